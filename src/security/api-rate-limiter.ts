import { Inject, Injectable, Logger } from '@nestjs/common';
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
import { consumeOr429 } from './rate-limit.js';

/**
 * The per-key request budget (RATE_LIMIT_*). With RATE_LIMIT_STORE=redis (the default)
 * it is one budget for the whole fleet: every instance counts in the same Redis key
 * (`dbu:<database>:ratelimit:<key id>`, one Lua INCR per request). While Redis is not
 * ready, each instance counts in its own memory instead (the same budget per instance:
 * a fleet of N then allows up to N times the rate until Redis is back) and says so once
 * in the log. The global guard and the cached-read fast path
 * (src/recipes/recipe-read.fast-path.ts) take points from the same limiter, so a key's
 * budget is the same whichever path answers.
 */
@Injectable()
export class ApiRateLimiter {
  private readonly logger = new Logger(ApiRateLimiter.name);
  private readonly limiter: RateLimiterAbstract;
  private readonly shared: boolean;
  private fallingBack = false;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly redis: RedisService,
  ) {
    const { limit, ttlMs, store } = config.security.rateLimit;
    const budget = { points: limit, duration: Math.ceil(ttlMs / 1000) };
    const local = new RateLimiterMemory(budget);
    this.shared = store === 'redis';
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
    this.noteStore();
    const res = await consumeOr429(
      this.limiter,
      keyId,
      reply,
      'rate limit exceeded for this API key',
    );
    void reply.header('x-ratelimit-remaining', String(res.remainingPoints));
  }

  /**
   * One point for the key if it has one left: the points remaining, or null when the key
   * is over its budget (the point is still counted, as the guard would count it).
   */
  async tryConsume(keyId: string): Promise<number | null> {
    this.noteStore();
    try {
      return (await this.limiter.consume(keyId)).remainingPoints;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        return null;
      }
      throw rejection;
    }
  }

  /** Logs when counting moves from the fleet's Redis to this instance's memory and back. */
  private noteStore(): void {
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
