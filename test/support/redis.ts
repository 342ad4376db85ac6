import { createClient, RedisClientType } from '@keyv/redis';

/** A plain Redis client on the stack's Redis, to look at what the service stored. */
export async function redisClient(env: Record<string, string>): Promise<RedisClientType> {
  const client = createClient({ url: env.REDIS_URL }) as RedisClientType;
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
