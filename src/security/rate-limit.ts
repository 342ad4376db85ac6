import { HttpException, HttpStatus } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { RateLimiterAbstract, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Takes one point for `key`; over the limit, sets `retry-after` and throws 429 with
 * `message`. Returns the limiter's answer (remaining points) otherwise.
 */
export async function consumeOr429(
  limiter: RateLimiterAbstract,
  key: string,
  reply: FastifyReply,
  message: string,
): Promise<RateLimiterRes> {
  try {
    return await limiter.consume(key);
  } catch (rejection) {
    if (rejection instanceof RateLimiterRes) {
      void reply.header('retry-after', String(Math.ceil(rejection.msBeforeNext / 1000)));
      throw new HttpException(message, HttpStatus.TOO_MANY_REQUESTS);
    }
    throw rejection;
  }
}
