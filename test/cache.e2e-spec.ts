import type { RedisClientType } from '@keyv/redis';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { InvalidationBusService } from '../src/cache/invalidation-bus.service.js';
import { TieredCacheService } from '../src/cache/tiered-cache.service.js';
import { JobLeadershipService } from '../src/database/job-leadership.service.js';
import { API_KEYS_JSON, bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { freePort } from './support/ports.js';
import { keysMatching, redisClient, resetRateLimits } from './support/redis.js';
import { REPO_ROOT, stack, stackEnv } from './support/stack.js';
import { axis, recipeBody } from './support/vectors.js';
import { until as untilFor } from './support/wait.js';

const until = <T>(probe: () => Promise<T>, accept: (v: T) => boolean, ms = 10_000): Promise<T> =>
  untilFor(probe, accept, ms);

describe('two-level cache (real Redis, real PostgreSQL)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let a: NestFastifyApplication;
  let b: NestFastifyApplication;
  let redis: RedisClientType;
  const apps: NestFastifyApplication[] = [];
  const overrides = {
    CACHE_WRITE_BEHIND_FLUSH_MS: '200',
    CACHE_WRITE_BEHIND_CLAIM_IDLE_MS: '1000',
    CACHE_SEARCH_RESULTS_TTL_S: '1',
    CACHE_CIRCUIT_OPEN_MS: '500',
  };

  async function boot(extra: Record<string, string> = {}): Promise<NestFastifyApplication> {
    const app = await bootApp(testConfig(env, database, { ...overrides, ...extra }));
    apps.push(app);
    return app;
  }

  const ns = (): string => `dbu:${database}:v1:`;

  async function createUser(app: NestFastifyApplication): Promise<string> {
    const res = await request(app.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: `u${Date.now()}${Math.random()}@example.com`, displayName: 'Test User' })
      .expect(201);
    return (res.body as { id: string }).id;
  }

  async function createRecipe(app: NestFastifyApplication, title = 'Cached soup'): Promise<string> {
    const res = await request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody({ title, embedding: axis(11) }))
      .expect(201);
    return (res.body as { id: string }).id;
  }

  async function dbTitle(id: string): Promise<string> {
    const res = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT title FROM recipes WHERE id = $1',
      [id],
    );
    return (res.rows[0] as { title: string }).title;
  }

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'cache');
    redis = await redisClient(env);
    a = await boot();
    b = await boot();
  });

  afterAll(async () => {
    await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()').catch(
      () => undefined,
    );
    await stack('start', 'redis');
    for (const app of apps) {
      await app.close();
    }
    await redis?.close();
    await dropTestDatabase(db, database);
  });

  it('write-through: after a profile update both tiers hold the new value', async () => {
    const user = await createUser(a);
    await request(a.getHttpServer())
      .put(`/v1/users/${user}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { theme: 'dark' } })
      .expect(200);
    const tiers = a.get(TieredCacheService);
    const key = tiers.key('user_profiles', user);
    // Personal data is cached sealed with the user's data key, in both tiers.
    const l1 = await tiers.peekLocal<{ sealed: string }>('user_profiles', user);
    expect(l1?.sealed).toEqual(expect.any(String));
    const l2 = await redis.get(key);
    expect(l2).toContain(l1!.sealed);
    expect(l2).not.toContain('dark');
    const res = await request(b.getHttpServer())
      .get(`/v1/users/${user}/profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(res.body.data).toEqual({ theme: 'dark' });
  });

  it('event-driven invalidation: an update on one instance removes the stale L1 entry on the other within 1 s', async () => {
    const user = await createUser(a);
    await request(a.getHttpServer())
      .put(`/v1/users/${user}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({ likedCuisines: ['thai'], likedIngredients: [], dislikes: [] })
      .expect(200);
    // B reads it into its own L1.
    const first = await request(b.getHttpServer())
      .get(`/v1/users/${user}/taste-profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(first.body.likedCuisines).toEqual(['thai']);
    const bTiers = b.get(TieredCacheService);
    const inL1OfB = (): boolean => bTiers.hasLocal('taste_profiles', user);
    expect(inL1OfB()).toBe(true);

    const started = Date.now();
    await request(a.getHttpServer())
      .put(`/v1/users/${user}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({ likedCuisines: ['greek'], likedIngredients: [], dislikes: [] })
      .expect(200);
    await until(
      async () => inL1OfB(),
      (has) => !has,
      1_000,
    );
    expect(inL1OfB()).toBe(false);
    expect(Date.now() - started).toBeLessThan(1_000);
    const after = await request(b.getHttpServer())
      .get(`/v1/users/${user}/taste-profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(after.body.likedCuisines).toEqual(['greek']);
  });

  it('cache-aside: a search result is cached under the hash of the query and expires after its TTL', async () => {
    await createRecipe(a, 'Search me');
    const before = await keysMatching(redis, `${ns()}search_results:*`);
    await request(a.getHttpServer())
      .post('/v1/recipes/search')
      .set(bearer(KEYS.all))
      .send({ embedding: axis(11), filters: { cuisine: 'italian' }, maxDistance: 2 })
      .expect(200);
    // The L2 fill happens just after the response.
    const during = await until(
      () => keysMatching(redis, `${ns()}search_results:*`),
      (keys) => keys.length > before.length,
      2_000,
    );
    expect(during.length).toBe(before.length + 1);
    await sleep(1_500);
    const after = await keysMatching(redis, `${ns()}search_results:*`);
    expect(after.length).toBe(before.length);
  });

  it('write-behind: the update returns at once, is read back, and reaches PostgreSQL within the flush interval', async () => {
    const id = await createRecipe(a);
    const patched = await request(a.getHttpServer())
      .patch(`/v1/recipes/${id}`)
      .set(bearer(KEYS.all))
      .set('if-match', '"1"')
      .send({ title: 'Queued title' })
      .expect(200);
    expect(patched.body).toMatchObject({ title: 'Queued title', version: 2 });
    // Read-your-writes on the other instance, before or after the flush.
    const read = await request(b.getHttpServer())
      .get(`/v1/recipes/${id}`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(read.body).toMatchObject({ title: 'Queued title', version: 2 });
    expect(
      await until(
        () => dbTitle(id),
        (t) => t === 'Queued title',
        2_000,
      ),
    ).toBe('Queued title');
    const version = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT version FROM recipes WHERE id = $1',
      [id],
    );
    expect(version.rows[0]).toEqual({ version: 2 });
    // A stale If-Match against the queued version is refused.
    await request(b.getHttpServer())
      .patch(`/v1/recipes/${id}`)
      .set(bearer(KEYS.all))
      .set('if-match', '"1"')
      .send({ title: 'Lost' })
      .expect(412);
  });

  it('write-behind: a change queued by an instance killed before its flush is persisted by another', async () => {
    const id = await createRecipe(a, 'Before crash');
    const port = await freePort();
    const child: ChildProcess = spawn(
      process.execPath,
      [join(REPO_ROOT, 'dist', 'src', 'main.js')],
      {
        env: {
          ...process.env,
          ...env,
          NODE_ENV: 'test',
          DB_NAME: database,
          PORT: String(port),
          HOST: '127.0.0.1',
          API_KEYS: API_KEYS_JSON,
          JOBS_ENABLED: 'false',
          LOG_LEVEL: 'warn',
          // Never flushes on its own within this test.
          CACHE_WRITE_BEHIND_FLUSH_MS: '600000',
        },
        stdio: 'ignore',
      },
    );
    try {
      await until(
        () =>
          fetch(`http://127.0.0.1:${port}/health/live`).then(
            (r) => r.ok,
            () => false,
          ),
        (ok) => ok,
        60_000,
      );
      const res = await fetch(`http://127.0.0.1:${port}/v1/recipes/${id}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${KEYS.all}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: 'Survives the crash' }),
      });
      expect(res.status).toBe(200);
    } finally {
      child.kill('SIGKILL');
    }
    // The killed instance never flushed: its queued change is in the stream, and
    // another instance's flusher persists it.
    expect(
      await until(
        () => dbTitle(id),
        (t) => t === 'Survives the crash',
        10_000,
      ),
    ).toBe('Survives the crash');
  });

  it('write-behind: changes a dead consumer read but never acknowledged are claimed (XAUTOCLAIM) and persisted', async () => {
    const id = await createRecipe(a, 'Unclaimed');
    const stream = `${ns()}wb:recipes`;
    const change = {
      ...recipeBody({
        title: 'Claimed from a dead consumer',
        authorId: null,
        description: 'Quick and simple',
      }),
      updatedAt: new Date().toISOString(),
    };
    delete (change as Record<string, unknown>).embedding;
    await redis.xGroupCreate(stream, 'flushers', '0', { MKSTREAM: true }).catch((err: Error) => {
      if (!err.message.includes('BUSYGROUP')) {
        throw err;
      }
    });
    // Queue the change and deliver it to a consumer that then "dies", atomically so that
    // no live flusher reads it first.
    const replies = await redis
      .multi()
      .xAdd(stream, '*', {
        id,
        version: '2',
        change: JSON.stringify(change),
        queuedAt: String(Date.now()),
      })
      .xReadGroup('flushers', 'dead-instance', { key: stream, id: '>' }, { COUNT: 1 })
      .exec();
    expect(JSON.stringify(replies[1])).toContain(id);
    const pending = await redis.xPending(stream, 'flushers');
    expect(pending.pending).toBeGreaterThanOrEqual(1);
    // Live instances claim it once it has been idle CACHE_WRITE_BEHIND_CLAIM_IDLE_MS (1 s here).
    expect(
      await until(
        () => dbTitle(id),
        (t) => t === 'Claimed from a dead consumer',
        10_000,
      ),
    ).toBe('Claimed from a dead consumer');
    const left = await redis.xPending(stream, 'flushers');
    expect(left.consumers?.find((c) => c.name === 'dead-instance')).toBeUndefined();
  });

  it('100 concurrent misses of one key run the loader once', async () => {
    const tiers = a.get(TieredCacheService);
    let calls = 0;
    const id = `stampede-${Date.now()}`;
    const loader = async (): Promise<{ n: number }> => {
      calls += 1;
      await sleep(50);
      return { n: 42 };
    };
    const results = await Promise.all(
      Array.from({ length: 100 }, () => tiers.getOrLoad('search_results', id, loader)),
    );
    expect(calls).toBe(1);
    expect(results.every((r) => r.n === 42)).toBe(true);
  });

  it('manual invalidation (ops:admin) removes entries by key and by type, on every instance', async () => {
    const id = await createRecipe(a, 'Invalidate me');
    await request(b.getHttpServer()).get(`/v1/recipes/${id}`).set(bearer(KEYS.all)).expect(200);
    const key = a.get(TieredCacheService).key('recipes', id);
    expect(
      await until(
        () => redis.exists(key),
        (n) => n === 1,
        2_000,
      ),
    ).toBe(1);
    await request(a.getHttpServer())
      .post('/v1/ops/cache/invalidate')
      .set(bearer(KEYS.opsRead))
      .send({ type: 'recipes', keys: [id] })
      .expect(403);
    await request(a.getHttpServer())
      .post('/v1/ops/cache/invalidate')
      .set(bearer(KEYS.all))
      .send({ type: 'recipes', keys: [id] })
      .expect(200);
    expect(await redis.exists(key)).toBe(0);
    const bTiers = b.get(TieredCacheService);
    expect(
      await until(
        async () => bTiers.hasLocal('recipes', id),
        (has) => !has,
        1_000,
      ),
    ).toBe(false);

    await request(a.getHttpServer())
      .post('/v1/recipes/search')
      .set(bearer(KEYS.all))
      .send({ embedding: axis(12), maxDistance: 2 })
      .expect(200);
    const all = await request(a.getHttpServer())
      .post('/v1/ops/cache/invalidate')
      .set(bearer(KEYS.all))
      .send({ type: 'search_results' })
      .expect(200);
    expect(all.body.removed).toBeGreaterThanOrEqual(1);
    expect(await keysMatching(redis, `${ns()}search_results:*`)).toEqual([]);
    await request(a.getHttpServer())
      .post('/v1/ops/cache/invalidate')
      .set(bearer(KEYS.all))
      .send({ type: 'nonsense' })
      .expect(400);
  });

  it('drops cache entries a restarted Redis restored from its snapshot (they may be stale)', async () => {
    const user = await createUser(a);
    await request(a.getHttpServer())
      .put(`/v1/users/${user}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { v: 1 } })
      .expect(200);
    const key = a.get(TieredCacheService).key('user_profiles', user);
    expect(await redis.exists(key)).toBe(1);
    await redis.sendCommand(['SAVE']);
    await stack('kill', 'redis');
    await stack('start', 'redis');
    await redis.close().catch(() => undefined);
    redis = await redisClient(env);
    // Restored from the snapshot, then removed by the service once it sees the new run_id.
    expect(
      await until(
        () => redis.exists(key),
        (n) => n === 0,
        15_000,
      ),
    ).toBe(0);
  });

  it('keeps serving reads and writes while Redis is down, reports it, and resumes caching when it is back', async () => {
    const user = await createUser(a);
    const id = await createRecipe(a, 'Outage soup');
    await stack('stop', 'redis');
    try {
      await request(a.getHttpServer())
        .put(`/v1/users/${user}/profile`)
        .set(bearer(KEYS.all))
        .send({ data: { during: 'outage' } })
        .expect(200);
      const profile = await request(a.getHttpServer())
        .get(`/v1/users/${user}/profile`)
        .set(bearer(KEYS.all))
        .expect(200);
      expect(profile.body.data).toEqual({ during: 'outage' });
      // Write-behind falls back to write-through: nothing is lost, the row is updated at once.
      await request(a.getHttpServer())
        .patch(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .send({ title: 'Written through' })
        .expect(200);
      expect(await dbTitle(id)).toBe('Written through');
      await request(a.getHttpServer()).get(`/v1/recipes/${id}`).set(bearer(KEYS.all)).expect(200);
      await request(a.getHttpServer())
        .post('/v1/recipes/search')
        .set(bearer(KEYS.all))
        .send({ embedding: axis(11), maxDistance: 2 })
        .expect(200);
      const ready = await request(a.getHttpServer()).get('/health/ready').expect(200);
      expect(ready.body.details.redis.status).toBe('degraded');
    } finally {
      await stack('start', 'redis');
    }
    await until(
      async () =>
        (await request(a.getHttpServer()).get('/health/ready')).body.details?.redis?.status,
      (s) => s === 'up',
      15_000,
    );
    // Caching resumes without a restart (the breaker's trial call closes it).
    await sleep(600);
    const again = await until(
      async () => {
        await request(a.getHttpServer())
          .put(`/v1/users/${user}/profile`)
          .set(bearer(KEYS.all))
          .send({ data: { after: 'outage' } })
          .expect(200);
        return redis.exists(a.get(TieredCacheService).key('user_profiles', user));
      },
      (n) => n === 1,
      10_000,
    );
    expect(again).toBe(1);
  });

  describe('search results stay coherent with writes (issue 10, part 2)', () => {
    // Two more instances with the spec's 15-minute search TTL: no entry expires during
    // these tests, so only the coherence mechanism can keep answers fresh.
    let c: NestFastifyApplication;
    let d: NestFastifyApplication;
    interface Hit {
      id: string;
      title: string;
      distance: number;
    }

    beforeAll(async () => {
      c = await boot({ CACHE_SEARCH_RESULTS_TTL_S: '900' });
      d = await boot({ CACHE_SEARCH_RESULTS_TTL_S: '900' });
    });

    function search(
      app: NestFastifyApplication,
      body: Record<string, unknown>,
      headers: Record<string, string> = {},
    ): Promise<Hit[]> {
      return request(app.getHttpServer())
        .post('/v1/recipes/search')
        .set(bearer(KEYS.all))
        .set(headers)
        .send(body)
        .expect(200)
        .then((res) => (res.body as { items: Hit[] }).items);
    }

    async function create(
      app: NestFastifyApplication,
      title: string,
      embedding: number[],
    ): Promise<{ id: string; lsn: string }> {
      const res = await request(app.getHttpServer())
        .post('/v1/recipes')
        .set(bearer(KEYS.all))
        .send(recipeBody({ title, embedding }))
        .expect(201);
      return { id: (res.body as { id: string }).id, lsn: String(res.headers['x-write-lsn']) };
    }

    const ids = (hits: Hit[]): string[] => hits.map((h) => h.id);

    /** Search results answered from either tier of one instance so far. */
    async function searchHits(app: NestFastifyApplication): Promise<number> {
      const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
      return [...text.matchAll(/^cache_hits_total\{([^}]*)\} (\d+)/gm)]
        .filter((m) => m[1].includes('type="search_results"'))
        .reduce((sum, m) => sum + Number(m[2]), 0);
    }

    it('a deleted recipe never comes back from a cached search or /similar, on either instance', async () => {
      const { id } = await create(c, 'Doomed soup', axis(20));
      const q = { embedding: axis(20), maxDistance: 0.5 };
      expect(ids(await search(c, q))).toContain(id);
      expect(ids(await search(d, q))).toContain(id);
      await request(d.getHttpServer())
        .get(`/v1/recipes/${id}/similar`)
        .set(bearer(KEYS.all))
        .expect(200);
      await request(c.getHttpServer())
        .delete(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .expect(204);
      expect(ids(await search(c, q))).not.toContain(id);
      expect(ids(await search(d, q))).not.toContain(id);
      await request(d.getHttpServer())
        .get(`/v1/recipes/${id}/similar`)
        .set(bearer(KEYS.all))
        .expect(404);
    });

    it('after a PATCH of the title and a PUT of a new embedding are flushed, no search answers from the entry computed before', async () => {
      const { id } = await create(c, 'Before', axis(21));
      const q = { embedding: axis(21), maxDistance: 2 };
      for (const app of [c, d]) {
        expect((await search(app, q)).find((h) => h.id === id)).toMatchObject({
          title: 'Before',
          distance: 0,
        });
      }
      await request(c.getHttpServer())
        .patch(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .send({ title: 'After' })
        .expect(200);
      await request(c.getHttpServer())
        .put(`/v1/recipes/${id}/embedding`)
        .set(bearer(KEYS.all))
        .send({ embedding: axis(22) })
        .expect(200);
      // Write-behind: both changes reach PostgreSQL with the next flush.
      const persisted = await until(
        async () =>
          (
            await adminQuery(
              db,
              db.primaryPort,
              database,
              `SELECT title, embedding <=> $2::vector AS d, version FROM recipes WHERE id = $1`,
              [id, `[${axis(22).join(',')}]`],
            )
          ).rows[0] as { title: string; d: number; version: number },
        (r) => r.title === 'After' && r.d === 0 && r.version === 3,
        5_000,
      );
      expect(persisted).toMatchObject({ title: 'After', d: 0, version: 3 });
      for (const app of [c, d]) {
        const hit = (await search(app, q)).find((h) => h.id === id);
        expect(hit?.title).toBe('After');
        expect(hit?.distance).toBeCloseTo(1, 5);
      }
    });

    it('the writer reads its own create in its next search (x-write-lsn), and so does everyone after it', async () => {
      const q = { embedding: axis(23), maxDistance: 0.5 };
      expect(await search(c, q)).toEqual([]);
      expect(await search(d, q)).toEqual([]);
      const { id, lsn } = await create(c, 'Fresh', axis(23));
      expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(ids(await search(d, q, { 'x-write-lsn': lsn }))).toEqual([id]);
      expect(ids(await search(c, q))).toEqual([id]);
      expect(ids(await search(d, q))).toEqual([id]);
    });

    it('a batch upsert on one instance reaches the cached searches of the other', async () => {
      const q = { embedding: axis(24), maxDistance: 0.5 };
      expect(await search(c, q)).toEqual([]);
      const res = await request(d.getHttpServer())
        .post('/v1/recipes/batch')
        .set(bearer(KEYS.all))
        .send({ items: [recipeBody({ title: 'Batched', embedding: axis(24) })] })
        .expect(200);
      expect(ids(await search(c, q))).toEqual((res.body as { ids: string[] }).ids);
    });

    it('never computes an entry on a replica that has not replayed a counted change (replay paused)', async () => {
      const { id } = await create(c, 'Lagging', axis(31));
      const q = { embedding: axis(31), maxDistance: 0.5 };
      expect(ids(await search(d, q))).toEqual([id]);
      await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_pause()');
      try {
        await request(c.getHttpServer())
          .delete(`/v1/recipes/${id}`)
          .set(bearer(KEYS.all))
          .expect(204);
        // The replica still has the row: a search computed there would bring it back and
        // cache it under the new generation.
        const onReplica = await adminQuery(
          db,
          db.replicaPort,
          database,
          'SELECT count(*)::int AS n FROM recipes WHERE id = $1',
          [id],
        );
        expect(onReplica.rows[0]).toEqual({ n: 1 });
        expect(await search(d, q)).toEqual([]);
        expect(await search(c, q)).toEqual([]);
      } finally {
        await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()');
      }
      expect(await search(d, q)).toEqual([]);
    });

    it('a delete or a new title makes stale only the cached results holding the recipe', async () => {
      const { id: x } = await create(c, 'Deleted later', axis(32));
      const { id: y } = await create(c, 'Renamed later', axis(33));
      const { id: z } = await create(c, 'Left alone', axis(34));
      const [qx, qy, qz] = [32, 33, 34].map((n) => ({ embedding: axis(n), maxDistance: 0.5 }));
      expect(ids(await search(d, qx))).toEqual([x]);
      expect(ids(await search(d, qy))).toEqual([y]);
      expect(ids(await search(d, qz))).toEqual([z]);
      await request(c.getHttpServer())
        .patch(`/v1/recipes/${y}`)
        .set(bearer(KEYS.all))
        .send({ title: 'Renamed' })
        .expect(200);
      expect(
        await until(
          () => dbTitle(y),
          (t) => t === 'Renamed',
          5_000,
        ),
      ).toBe('Renamed');
      await request(c.getHttpServer()).delete(`/v1/recipes/${x}`).set(bearer(KEYS.all)).expect(204);
      const hitsBefore = await searchHits(d);
      expect(await search(d, qx)).toEqual([]);
      expect((await search(d, qy)).map((h) => h.title)).toEqual(['Renamed']);
      expect(await searchHits(d)).toBe(hitsBefore);
      // The result holding neither is still served from the cache.
      expect(ids(await search(d, qz))).toEqual([z]);
      expect(await searchHits(d)).toBe(hitsBefore + 1);
    });

    it('does not depend on the invalidation message arriving', async () => {
      const { id } = await create(c, 'Unheard', axis(25));
      const q = { embedding: axis(25), maxDistance: 0.5 };
      expect(ids(await search(d, q))).toEqual([id]);
      // d hears nothing from now on (a lost message, without a lost connection).
      const bus = d.get<InvalidationBusService, { receive: (raw: string) => void }>(
        InvalidationBusService,
      );
      const receive = bus.receive;
      bus.receive = () => undefined;
      try {
        await request(c.getHttpServer())
          .delete(`/v1/recipes/${id}`)
          .set(bearer(KEYS.all))
          .expect(204);
        expect(await search(d, q)).toEqual([]);
      } finally {
        bus.receive = receive;
      }
    });

    it('the invalidate endpoint reports what it removed: by type on every instance and in Redis, by key', async () => {
      const clear = (): request.Test =>
        request(d.getHttpServer())
          .post('/v1/ops/cache/invalidate')
          .set(bearer(KEYS.all))
          .send({ type: 'search_results' })
          .expect(200);
      await clear();
      expect(await keysMatching(redis, `${ns()}search_results:*`)).toEqual([]);
      for (const n of [26, 27, 28]) {
        await search(c, { embedding: axis(n), maxDistance: 0.5 });
      }
      await search(d, { embedding: axis(26), maxDistance: 0.5 });
      // L2 fills happen just after the responses.
      expect(
        (
          await until(
            () => keysMatching(redis, `${ns()}search_results:*`),
            (k) => k.length === 3,
            2_000,
          )
        ).length,
      ).toBe(3);
      const res = await clear();
      const instance = (app: NestFastifyApplication): string =>
        app.get(JobLeadershipService).instanceId;
      expect(res.body).toMatchObject({ type: 'search_results', removed: 7, redis: 3 });
      const perInstance = Object.fromEntries(
        (res.body.instances as Array<{ instance: string; removed: number }>).map((i) => [
          i.instance,
          i.removed,
        ]),
      );
      expect(perInstance).toEqual({
        [instance(a)]: 0,
        [instance(b)]: 0,
        [instance(c)]: 3,
        [instance(d)]: 1,
      });
      expect(res.body.unanswered).toBe(0);
      expect(await keysMatching(redis, `${ns()}search_results:*`)).toEqual([]);

      // By key: the recipe cached in Redis and in both instances' L1.
      const { id } = await create(c, 'Counted', axis(29));
      await request(d.getHttpServer()).get(`/v1/recipes/${id}`).set(bearer(KEYS.all)).expect(200);
      const byKey = await request(c.getHttpServer())
        .post('/v1/ops/cache/invalidate')
        .set(bearer(KEYS.all))
        .send({ type: 'recipes', keys: [id] })
        .expect(200);
      expect(byKey.body).toMatchObject({ type: 'recipes', removed: 3, redis: 1 });
    });

    it('a Redis restart that restores an older snapshot serves no entry computed before a later write', async () => {
      const { id } = await create(c, 'Snapshotted', axis(30));
      const q = { embedding: axis(30), maxDistance: 0.5 };
      expect(ids(await search(c, q))).toEqual([id]);
      expect(ids(await search(d, q))).toEqual([id]);
      await until(
        () => keysMatching(redis, `${ns()}search_results:*`),
        (k) => k.length > 0,
        2_000,
      );
      // The snapshot holds the entry and the generation it was computed under...
      await redis.sendCommand(['SAVE']);
      // ...and the delete's generation is newer than the snapshot.
      await request(c.getHttpServer())
        .delete(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .expect(204);
      await stack('kill', 'redis');
      await stack('start', 'redis');
      await redis.close().catch(() => undefined);
      redis = await redisClient(env);
      for (const app of [c, d]) {
        await until(
          async () =>
            (await request(app.getHttpServer()).get('/health/ready')).body.details?.redis?.status,
          (s) => s === 'up',
          15_000,
        );
      }
      expect(await search(d, q)).toEqual([]);
      expect(await search(c, q)).toEqual([]);
    });
  });

  describe('the cached-read fast path (HTTP_FAST_PATH)', () => {
    // headers that differ between any two responses
    const VOLATILE = new Set(['date', 'x-ratelimit-remaining', 'connection', 'keep-alive']);
    const l1Hits = async (app: NestFastifyApplication): Promise<number> => {
      const text = (
        await request(app.getHttpServer()).get('/metrics').set(bearer(KEYS.all)).expect(200)
      ).text;
      const m = /^cache_hits_total\{(?=[^}]*tier="l1")(?=[^}]*type="recipes")[^}]*\} (\d+)$/m.exec(
        text,
      );
      return m ? Number(m[1]) : 0;
    };
    const answered = async (app: NestFastifyApplication): Promise<number> => {
      const text = (
        await request(app.getHttpServer()).get('/metrics').set(bearer(KEYS.all)).expect(200)
      ).text;
      const m =
        /^http_fast_path_responses_total\{[^}]*route="\/v1\/recipes\/:id"[^}]*\} (\d+)$/m.exec(
          text,
        );
      return m ? Number(m[1]) : 0;
    };
    const get = (app: NestFastifyApplication, id: string, key: string = KEYS.all) =>
      request(app.getHttpServer())
        .get(`/v1/recipes/${id}`)
        .set(bearer(key))
        .set('x-request-id', 'fast-path-check');
    const shape = (res: request.Response) => ({
      status: res.status,
      body: res.text,
      headers: Object.fromEntries(
        Object.entries(res.headers).filter(([name]) => !VOLATILE.has(name)),
      ),
    });
    let full: NestFastifyApplication;

    beforeAll(async () => {
      full = await boot({ HTTP_FAST_PATH: 'false' });
    });

    it('answers a cached GET before NestJS, with the status, headers and body of the full path', async () => {
      const id = await createRecipe(a, 'Fast path soup');
      // the full path fills its own L1 on its first read; the second is a hit
      await get(full, id).expect(200);
      const before = { a: await answered(a), full: await answered(full) };
      const fast = await get(a, id).expect(200);
      const slow = await get(full, id).expect(200);
      expect(await answered(a)).toBe(before.a + 1);
      expect(await answered(full)).toBe(0);
      expect(shape(fast)).toEqual(shape(slow));
      expect(fast.headers).toMatchObject({
        etag: '"1"',
        'x-request-id': 'fast-path-check',
        'content-type': 'application/json; charset=utf-8',
      });
      expect(Number(fast.headers['x-ratelimit-remaining'])).toBeGreaterThan(0);
      expect((fast.body as { title: string }).title).toBe('Fast path soup');
    });

    it('hands every other request to the full path: no key, a key without the scope, a query string, x-consistency: strong', async () => {
      const id = await createRecipe(a, 'Handed on');
      await get(a, id).expect(200);
      const before = await answered(a);
      const hitsBefore = await l1Hits(a);
      const noKey = await request(a.getHttpServer()).get(`/v1/recipes/${id}`).expect(401);
      expect(noKey.body.message).toContain('missing API key');
      await get(a, id, 'not-a-key').expect(401);
      await get(a, id, KEYS.opsRead).expect(403);
      // refused requests read nothing from the cache: no hit counted
      expect(await l1Hits(a)).toBe(hitsBefore);
      await request(a.getHttpServer())
        .get(`/v1/recipes/${id}?fields=all`)
        .set(bearer(KEYS.all))
        .expect(200);
      // a title changed behind the cache's back: the cached answer keeps the old one,
      // x-consistency: strong reads the database
      await adminQuery(
        db,
        db.primaryPort,
        database,
        'UPDATE recipes SET title = $2 WHERE id = $1',
        [id, 'Changed behind the cache'],
      );
      const strong = await get(a, id).set('x-consistency', 'strong').expect(200);
      expect(await answered(a)).toBe(before);
      expect(strong.body.title).toBe('Changed behind the cache');
      const cached = await get(a, id).expect(200);
      expect(cached.body.title).toBe('Handed on');
      expect(await answered(a)).toBe(before + 1);
    });

    it('follows writes: a PATCH answers the new version, a DELETE a 404', async () => {
      const id = await createRecipe(a, 'Before the patch');
      expect((await get(a, id).expect(200)).headers.etag).toBe('"1"');
      await request(a.getHttpServer())
        .patch(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .send({ title: 'After the patch' })
        .expect(200);
      const patched = await get(a, id).expect(200);
      expect(patched.headers.etag).toBe('"2"');
      expect(patched.body.title).toBe('After the patch');
      await request(a.getHttpServer())
        .delete(`/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .expect(204);
      await get(a, id).expect(404);
    });

    it('takes its points from the key rate limit the guard uses: the request over it is a 429', async () => {
      const limited = await boot({ RATE_LIMIT_LIMIT: '3', RATE_LIMIT_TTL_MS: '120000' });
      const id = await createRecipe(a, 'Rate limited');
      // the key's count is shared with every app of this file (one fleet, one Redis)
      await resetRateLimits(env, database);
      const first = await get(limited, id).expect(200); // full path: fills L1
      expect(first.headers['x-ratelimit-remaining']).toBe('2');
      const second = await get(limited, id).expect(200);
      expect(second.headers['x-ratelimit-remaining']).toBe('1');
      await get(limited, id).expect(200);
      const over = await get(limited, id).expect(429);
      expect(over.headers['retry-after']).toEqual(expect.any(String));
      expect(over.body.message).toContain('rate limit');
    });
  });
});
