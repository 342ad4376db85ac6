import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import pg from 'pg';
import request from 'supertest';
import { ReadRouterService } from '../src/database/read-router.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  testSsl,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

interface PoolsView {
  pools: Array<{ label: string; size: number }>;
  pgbouncer: { defaultPoolSize: number; clientsWaiting: number } | null;
  events: Array<{ target: string; direction: string; from: number; to: number }>;
}

/**
 * Adaptive pool sizing on the shared stack: a load that saturates the writer pool
 * scales it up, idleness scales it down; PgBouncer's default_pool_size follows its
 * waiting clients (restored afterwards).
 */
describe('adaptive pools and PgBouncer pool control (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  let original = 20;

  const admin = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const c = new pg.Client({
      host: env.PGBOUNCER_HOST,
      port: Number(env.PGBOUNCER_PORT),
      user: env.PGBOUNCER_ADMIN_USER,
      password: env.PGBOUNCER_ADMIN_PASSWORD,
      database: 'pgbouncer',
      ssl: testSsl(env),
    });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  };
  const pgbSetting = async (key: string): Promise<number> =>
    Number(
      (await admin<{ key: string; value: string }>('SHOW CONFIG')).find((r) => r.key === key)
        ?.value,
    );
  const poolSize = (): Promise<number> => pgbSetting('default_pool_size');
  let originalReserve = 5;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'pools');
    original = await poolSize();
    originalReserve = await pgbSetting('reserve_pool_size');
    app = await bootApp(
      testConfig(env, database, {
        DB_POOL_MIN: '2',
        DB_POOL_DEFAULT: '4',
        DB_POOL_MAX: '30',
        DB_POOL_RESERVE: '7',
        DB_POOL_EVAL_INTERVAL_MS: '400',
      }),
    );
  });

  afterAll(async () => {
    await app?.close();
    await admin(`SET default_pool_size = ${original}`).catch(() => undefined);
    await admin(`SET reserve_pool_size = ${originalReserve}`).catch(() => undefined);
    await dropTestDatabase(db, database);
  });

  const view = async (): Promise<PoolsView> =>
    (await request(app.getHttpServer()).get('/v1/ops/pools').set(bearer(KEYS.opsRead)).expect(200))
      .body as PoolsView;

  it("applies DB_POOL_RESERVE to PgBouncer's reserve_pool_size (SHOW CONFIG)", async () => {
    expect(originalReserve).toBe(5);
    await expect(
      until(
        () => pgbSetting('reserve_pool_size'),
        (n) => n === 7,
        15_000,
      ),
    ).resolves.toBe(7);
  });

  it('scales the writer pool up under a saturating load and back down when idle', async () => {
    const writer = `127.0.0.1:${db.primaryPort}`;
    const router = app.get(ReadRouterService);
    let stop = false;
    const workers = Array.from({ length: 16 }, async () => {
      while (!stop) {
        await router.write((m) => m.query('SELECT pg_sleep(0.2)'));
      }
    });
    const up = await until(
      view,
      (v) => (v.pools.find((p) => p.label === writer)?.size ?? 0) >= 14,
      15_000,
    );
    stop = true;
    await Promise.all(workers);
    expect(up.pools.find((p) => p.label === writer)?.size).toBeGreaterThanOrEqual(14);
    expect(
      up.events.some((e) => e.target === writer && e.direction === 'up' && e.to - e.from === 5),
    ).toBe(true);
    const metrics = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(metrics.text).toMatch(
      /dbu_pool_scaling_events_total\{[^}]*pool="127\.0\.0\.1:\d+",direction="up"[^}]*\} [1-9]/,
    );
    expect(metrics.text).toContain('dbu_pool_acquire_seconds_bucket');

    const down = await until(
      view,
      (v) => v.pools.find((p) => p.label === writer)?.size === 2,
      20_000,
    );
    expect(down.pools.find((p) => p.label === writer)?.size).toBe(2);
    expect(
      down.events.some((e) => e.target === writer && e.direction === 'down' && e.from - e.to === 2),
    ).toBe(true);
  });

  it("raises PgBouncer's default_pool_size while clients wait, lowers it when idle (SHOW CONFIG)", async () => {
    const start = await poolSize();
    // More sleeping clients than server connections: PgBouncer queues the rest.
    const clients = await Promise.all(
      Array.from({ length: start + 8 }, async () => {
        const c = new pg.Client({
          host: env.PGBOUNCER_HOST,
          port: Number(env.PGBOUNCER_PORT),
          user: env.DB_USER,
          password: env.DB_PASSWORD,
          database: env.PGBOUNCER_DB_RW,
          ssl: testSsl(env),
        });
        await c.connect();
        return c;
      }),
    );
    let stop = false;
    const load = clients.map(async (c) => {
      while (!stop) {
        await c.query('SELECT pg_sleep(0.3)');
      }
    });
    const raised = await until(poolSize, (n) => n > start, 15_000);
    stop = true;
    await Promise.all(load);
    await Promise.all(clients.map((c) => c.end()));
    expect(raised).toBe(start + 5);
    const v = await view();
    expect(v.events.some((e) => e.target === 'pgbouncer' && e.direction === 'up')).toBe(true);
    const lowered = await until(poolSize, (n) => n < raised, 15_000);
    expect(lowered).toBeLessThan(raised);
  });
});
