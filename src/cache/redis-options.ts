import type { RedisClientOptions } from '@keyv/redis';
import { MIN_TLS_VERSION } from '../common/tls.js';
import type { RedisConfig } from '../config/app-config.js';

/**
 * The connection options every Redis client of the service uses: REDIS_URL (rediss:// is
 * TLS with the certificate and host name verified, against REDIS_TLS_CA when given), the
 * ACL user and password (REDIS_USERNAME / REDIS_PASSWORD, unless the URL carries them),
 * TLS 1.2 at least. `socket` adds the caller's timeouts and reconnect strategy.
 */
export function redisClientOptions(
  redis: RedisConfig,
  /** without reconnectStrategy, node-redis's own (reconnect with backoff) */
  socket: { connectTimeout: number; reconnectStrategy?: false | ((retries: number) => number) },
): RedisClientOptions {
  const tls = redis.url.startsWith('rediss://');
  return {
    url: redis.url,
    ...(redis.username ? { username: redis.username } : {}),
    ...(redis.password ? { password: redis.password } : {}),
    socket: {
      ...socket,
      ...(tls
        ? { tls: true, minVersion: MIN_TLS_VERSION, ...(redis.tlsCa ? { ca: redis.tlsCa } : {}) }
        : {}),
    },
    disableOfflineQueue: true,
  };
}
