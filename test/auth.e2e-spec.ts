import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { RedisService } from '../src/cache/redis.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { resetRateLimits } from './support/redis.js';
import { stack, stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

describe('API keys, scopes, errors and rate limits', () => {
  let app: NestFastifyApplication;
  // two instances of one fleet (same database, same Redis), 3 requests per key per 2 min
  let limited: NestFastifyApplication;
  let limitedPeer: NestFastifyApplication;
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'auth');
    app = await bootApp(testConfig(env, database));
    const budget = { RATE_LIMIT_LIMIT: '3', RATE_LIMIT_TTL_MS: '120000' };
    limited = await bootApp(testConfig(env, database, budget));
    limitedPeer = await bootApp(testConfig(env, database, budget));
  });

  afterAll(async () => {
    await app?.close();
    await limited?.close();
    await limitedPeer?.close();
    await dropTestDatabase(db, database);
  });

  it('answers 401 without a key, in the API error shape, with the request id', async () => {
    const res = await request(app.getHttpServer()).get('/v1/ops/topology').expect(401);
    expect(res.body).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: expect.stringContaining('missing API key'),
      requestId: res.headers['x-request-id'],
    });
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 401 for an unknown key', async () => {
    await request(app.getHttpServer()).get('/v1/ops/topology').set(bearer('not-a-key')).expect(401);
  });

  it('answers 403 for a key without the route scope', async () => {
    const none = await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer(KEYS.none))
      .expect(403);
    expect(none.body.message).toContain('ops:read');
    await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.opsRead))
      .send({})
      .expect(403);
  });

  it('lets health and metrics through without a key', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200);
    await request(app.getHttpServer()).get('/metrics').expect(200);
  });

  it('rejects unknown body fields and names every bad field, writing nothing', async () => {
    const res = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 42, color: 'red' })
      .expect(400);
    const body = res.body as { message: string; errors: Array<{ field: string; message: string }> };
    expect(typeof body.message).toBe('string');
    expect(body.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: 'note', message: expect.stringMatching(/^note/) }),
        expect.objectContaining({ message: expect.stringMatching(/color should not exist/) }),
      ]),
    );
    // and field by field, by path
    const fields = (res.body as { errors: Array<{ field: string; message: string }> }).errors.map(
      (e) => e.field,
    );
    expect(fields).toEqual(expect.arrayContaining(['note', 'color']));
  });

  it('answers 400 for a malformed id', async () => {
    await request(app.getHttpServer())
      .get('/v1/ops/probes/not-a-uuid')
      .set(bearer(KEYS.opsRead))
      .expect(400);
  });

  it('never leaks the secret in an error', async () => {
    const res = await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer('super-secret-value'))
      .expect(401);
    expect(JSON.stringify(res.body)).not.toContain('super-secret-value');
  });

  /** Forgets what the fleet counted so far (the other tests' requests used the same keys). */
  const resetCounts = (): Promise<void> => resetRateLimits(env, database);

  const topology = (target: NestFastifyApplication, key: string) =>
    request(target.getHttpServer()).get('/v1/ops/topology').set(bearer(key));

  it('limits requests per key across the fleet (counted in Redis) with 429 and Retry-After', async () => {
    await resetCounts();
    // 3 per key for the fleet: 2 on one instance and 1 on the other use it up
    await topology(limited, KEYS.opsRead).expect(200);
    await topology(limitedPeer, KEYS.opsRead).expect(200);
    const last = await topology(limited, KEYS.opsRead).expect(200);
    expect(last.headers['x-ratelimit-remaining']).toBe('0');
    for (const target of [limitedPeer, limited]) {
      const res = await topology(target, KEYS.opsRead).expect(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(res.body.message).toBe('rate limit exceeded for this API key');
    }
    // Another key has its own budget.
    await topology(limitedPeer, KEYS.all).expect(200);
  });

  it('takes points in reservations (limit/100) and never lets the fleet past its limit', async () => {
    // 500 a window: reservations of 5, one Redis call per 5 requests of an instance
    const budget = { RATE_LIMIT_LIMIT: '500', RATE_LIMIT_TTL_MS: '120000' };
    const one = await bootApp(testConfig(env, database, budget));
    const two = await bootApp(testConfig(env, database, budget));
    try {
      await resetCounts();
      const statuses: number[] = [];
      for (let i = 0; i < 520; i++) {
        statuses.push((await topology(i % 2 === 0 ? one : two, KEYS.opsRead)).status);
      }
      const allowed = statuses.filter((s) => s === 200).length;
      expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
      // never more than the limit; at most (reservation - 1) per instance refused early
      expect(allowed).toBeLessThanOrEqual(500);
      expect(allowed).toBeGreaterThanOrEqual(500 - 4 * 2);
      // both instances spent: the last requests of each are refused
      expect(statuses.slice(-10)).toEqual(Array.from({ length: 10 }, () => 429));
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('counts on each instance while Redis is down, and shares the budget again when it is back', async () => {
    await resetCounts();
    await stack('stop', 'redis');
    try {
      await until(
        async () => (await topology(limited, KEYS.none).expect(403)).headers,
        () => !limited.get(RedisService).isReady && !limitedPeer.get(RedisService).isReady,
      );
      expect(limited.get(RedisService).isReady).toBe(false);
      // each instance alone: 3 each (the 403s above are refused before the limit)
      for (const target of [limited, limitedPeer]) {
        for (let i = 0; i < 3; i++) {
          await topology(target, KEYS.opsRead).expect(200);
        }
        await topology(target, KEYS.opsRead).expect(429);
      }
    } finally {
      await stack('start', 'redis');
    }
    await until(
      async () => limited.get(RedisService).isReady && limitedPeer.get(RedisService).isReady,
      (ready) => ready,
      30_000,
    );
    // the fleet's count again: Redis counted none of the outage's requests
    await resetCounts();
    for (let i = 0; i < 3; i++) {
      await topology(i % 2 === 0 ? limited : limitedPeer, KEYS.opsRead).expect(200);
    }
    await topology(limitedPeer, KEYS.opsRead).expect(429);
  });

  it('serves the OpenAPI document', async () => {
    const res = await request(app.getHttpServer()).get('/docs-json').expect(200);
    expect(Object.keys((res.body as { paths: object }).paths)).toEqual(
      expect.arrayContaining(['/v1/ops/topology', '/health/ready']),
    );
  });
});
