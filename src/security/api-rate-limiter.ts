import { HttpException, HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import {
  RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import { RedisService } from '../cache/redis.service.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

/** Points an instance takes from the fleet's count at once: a Redis call per this many requests. */
const MAX_RESERVATION = 50;

/** Points of a key this instance took from the fleet's count and has not spent yet. */
interface Reservation {
  left: number;
  /** the end of the window they were taken in: unspent points lapse with it */
  until: number;
  /** the fleet's remaining points when they were taken */
  fleetLeft: number;
}

/**
 * The per-key request budget (RATE_LIMIT_*). With RATE_LIMIT_STORE=redis (the default)
 * it is one budget for the whole fleet: every instance counts in the same Redis key
 * (`dbu:<database>:ratelimit:<key id>`). An instance takes points in reservations of
 * limit/100 (1 to 50) and spends them locally, so a cached read pays a Redis call once
 * per reservation, not per request: the fleet never allows more than the limit, and may
 * refuse up to (reservation − 1) × instances requests early, points that other instances
 * hold unspent. While Redis is not ready, each instance counts in its own memory instead
 * (the same budget per instance: a fleet of N then allows up to N times the rate until
 * Redis is back) and says so once in the log. The global guard and the cached-read fast
 * path (src/recipes/recipe-read.fast-path.ts) take points from the same limiter, so a
 * key's budget is the same whichever path answers.
 */
@Injectable()
export class ApiRateLimiter {
  private readonly logger = new Logger(ApiRateLimiter.name);
  private readonly limiter: RateLimiterAbstract;
  private readonly shared: boolean;
  private readonly reservationSize: number;
  private readonly reservations = new Map<string, Reservation>();
  private fallingBack = false;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly redis: RedisService,
  ) {
    const { limit, ttlMs, store } = config.security.rateLimit;
    const budget = { points: limit, duration: Math.ceil(ttlMs / 1000) };
    const local = new RateLimiterMemory(budget);
    this.shared = store === 'redis';
    this.reservationSize = this.shared
      ? Math.min(MAX_RESERVATION, Math.max(1, Math.floor(limit / 100)))
      : 1;
    this.limiter = this.shared
      ? new RateLimiterRedis({
          ...budget,
          storeClient: redis.client,
          useRedisPackage: true,
          // not ready (down, reconnecting): count locally at once instead of queueing
          rejectIfRedisNotReady: true,
          keyPrefix: `dbu:${config.database.name}:ratelimit`,
          insuranceLimiter: local,
        })
      : local;
  }

  /** One point for the key; over the budget, 429 with `retry-after`. Sets x-ratelimit-remaining. */
  async consume(keyId: string, reply: FastifyReply): Promise<void> {
    const taken = await this.take(keyId);
    if ('retryAfterMs' in taken) {
      void reply.header('retry-after', String(Math.max(1, Math.ceil(taken.retryAfterMs / 1000))));
      throw new HttpException('rate limit exceeded for this API key', HttpStatus.TOO_MANY_REQUESTS);
    }
    void reply.header('x-ratelimit-remaining', String(taken.remaining));
  }

  /**
   * One point for the key if it has one left: the points remaining, or null when the key
   * is over its budget.
   */
  async tryConsume(keyId: string): Promise<number | null> {
    const taken = await this.take(keyId);
    return 'remaining' in taken ? taken.remaining : null;
  }

  /**
   * A point from this instance's reservation for the key, or a new reservation from the
   * fleet's count. `remaining` is the fleet's count at the last reservation less what
   * this instance spent since (others may have spent more meanwhile).
   */
  private async take(keyId: string): Promise<{ remaining: number } | { retryAfterMs: number }> {
    const now = Date.now();
    const held = this.reservations.get(keyId);
    if (held && held.left > 0 && held.until > now) {
      held.left--;
      return { remaining: held.fleetLeft + held.left };
    }
    this.noteStore();
    let size = this.reservationSize;
    let res: RateLimiterRes;
    try {
      res = await this.limiter.consume(keyId, size);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) {
        throw rejection;
      }
      if (size === 1) {
        return { retryAfterMs: rejection.msBeforeNext };
      }
      // fewer points left in the fleet than a reservation: give them back, take one
      await this.limiter.reward(keyId, size);
      size = 1;
      try {
        res = await this.limiter.consume(keyId, 1);
      } catch (last) {
        if (last instanceof RateLimiterRes) {
          return { retryAfterMs: last.msBeforeNext };
        }
        throw last;
      }
    }
    this.reservations.set(keyId, {
      left: size - 1,
      until: now + res.msBeforeNext,
      fleetLeft: res.remainingPoints,
    });
    return { remaining: res.remainingPoints + size - 1 };
  }

  /** Logs when counting moves from the fleet's Redis to this instance's memory and back. */
  private noteStore(): void {
    // ready and not falling back, or not ready and already falling back: nothing new
    if (!this.shared || this.redis.isReady !== this.fallingBack) {
      return;
    }
    this.fallingBack = !this.redis.isReady;
    if (this.fallingBack) {
      this.logger.warn(
        'rate limit: Redis not ready; this instance counts each key on its own until it is back',
      );
    } else {
      this.logger.log('rate limit: Redis ready again; the fleet shares each key’s budget');
    }
  }
}
