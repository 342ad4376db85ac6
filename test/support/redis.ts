import { readFileSync } from 'node:fs';
import { createClient, RedisClientOptions, RedisClientType } from '@keyv/redis';
import { redisClientOptions } from '../../src/cache/redis-options.js';

/**
 * Options of a client on the stack's Redis, from its `docker/stack.sh env` variables, by
 * the service's own builder (TLS against the stack's CA for rediss://), as an ACL user:
 * the stack's admin (STACK_REDIS_ADMIN_*, who may FLUSH and CONFIG) or the service's
 * (REDIS_USERNAME). Commands wait while the client reconnects (a test's own client).
 */
export function stackRedisOptions(
  env: Record<string, string | undefined>,
  socket: { connectTimeout?: number; reconnectStrategy?: false } = {},
  as: 'admin' | 'service' = 'admin',
): RedisClientOptions {
  return {
    ...redisClientOptions(
      {
        url: env.REDIS_URL ?? '',
        connectTimeoutMs: socket.connectTimeout ?? 5_000,
        username: as === 'admin' ? env.STACK_REDIS_ADMIN_USERNAME : env.REDIS_USERNAME,
        password: as === 'admin' ? env.STACK_REDIS_ADMIN_PASSWORD : env.REDIS_PASSWORD,
        tlsCa: env.REDIS_TLS_CA ? readFileSync(env.REDIS_TLS_CA, 'utf8') : null,
      },
      {
        connectTimeout: socket.connectTimeout ?? 5_000,
        reconnectStrategy: socket.reconnectStrategy,
      },
    ),
    disableOfflineQueue: false,
  };
}

/** A plain Redis client on the stack's Redis (its admin user), to look at what the service stored. */
export async function redisClient(
  env: Record<string, string>,
  as: 'admin' | 'service' = 'admin',
): Promise<RedisClientType> {
  const client = createClient(stackRedisOptions(env, {}, as)) as RedisClientType;
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export async function keysMatching(client: RedisClientType, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 500 })) {
    found.push(...batch);
  }
  return found;
}

/**
 * Forgets what the fleet's rate limiter counted for `database` (`dbu:<database>:ratelimit:*`):
 * every app a test file boots on the same database shares those counts, as a fleet does.
 */
export async function resetRateLimits(
  env: Record<string, string>,
  database: string,
): Promise<void> {
  const client = await redisClient(env);
  try {
    const keys = await keysMatching(client, `dbu:${database}:ratelimit:*`);
    if (keys.length > 0) {
      await client.del(keys);
    }
  } finally {
    await client.close();
  }
}
