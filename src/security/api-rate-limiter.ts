import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { consumeOr429 } from './rate-limit.js';

/**
 * The per-key request budget (RATE_LIMIT_*), one per instance: the global guard and the
 * cached-read fast path (src/recipes/recipe-read.fast-path.ts) take points from the same
 * limiter, so a key's budget is the same whichever path answers.
 */
@Injectable()
export class ApiRateLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.limiter = new RateLimiterMemory({
      points: config.security.rateLimit.limit,
      duration: Math.ceil(config.security.rateLimit.ttlMs / 1000),
    });
  }

  /** One point for the key; over the budget, 429 with `retry-after`. Sets x-ratelimit-remaining. */
  async consume(keyId: string, reply: FastifyReply): Promise<void> {
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
    try {
      return (await this.limiter.consume(keyId)).remainingPoints;
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        return null;
      }
      throw rejection;
    }
  }
}
