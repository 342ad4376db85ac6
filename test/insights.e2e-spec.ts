import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import pg from 'pg';
import request from 'supertest';
import type {
  BlockingNodeDto,
  ConnectionsResponseDto,
  LocksResponseDto,
  TopSqlItemDto,
  TopSqlResponseDto,
  WaitsResponseDto,
} from '../src/monitoring/insights/dto/insights-response.dto.js';
import { InsightsSamplerService } from '../src/monitoring/insights/insights-sampler.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

/**
 * Performance insights on the real stack. The collector is driven by hand
 * (INSIGHTS_SAMPLE_INTERVAL_MS=0): each test decides when a snapshot or a sample is taken,
 * so what lands in a window is known without racing a timer.
 */
describe('performance insights (/v1/ops/insights; real stack)', () => {
  let app: NestFastifyApplication;
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  const clients: pg.Client[] = [];

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'insights');
    app = await bootApp(testConfig(env, database, { INSIGHTS_SAMPLE_INTERVAL_MS: '0' }));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const sampler = (target = app): InsightsSamplerService => target.get(InsightsSamplerService);

  /** A session of the test on the primary, as the service's role. */
  async function session(applicationName: string, name = database): Promise<pg.Client> {
    const c = new pg.Client({
      host: db.host,
      port: db.primaryPort,
      user: db.user,
      password: db.password,
      database: name,
      ssl: db.ssl,
      application_name: applicationName,
    });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
    return c;
  }

  async function get<T>(path: string, target = app): Promise<T> {
    const res = await request(target.getHttpServer())
      .get(path)
      .set(bearer(KEYS.opsRead))
      // History is read where reads go: the writer here, so a flush is seen at once.
      .set('x-consistency', 'strong')
      .expect(200);
    return res.body as T;
  }

  const named = (items: TopSqlItemDto[], marker: string): TopSqlItemDto[] =>
    items.filter((i) => i.query?.includes(marker));

  it('top-sql ranks statements by the time they took inside the window, from snapshot deltas', async () => {
    const c = await session('insights-test-topsql');
    // queryid ignores column aliases: each statement has its own shape, the alias names it.
    const before = 'SELECT pg_sleep($1) AS insights_before_window, $2::text AS label';
    const slow = 'SELECT pg_sleep($1) AS insights_slow_statement';
    const fast = 'SELECT $1::int AS insights_fast_statement';
    // Counted before the baseline: in pg_stat_statements' totals, never in a window.
    await c.query(before, [0.05, 'x']);
    await expect(sampler().snapshotStatements()).resolves.toEqual({ stored: 0, baseline: true });

    await c.query(before, [0.05, 'x']);
    await c.query(before, [0.05, 'x']);
    await expect(sampler().snapshotStatements()).resolves.toMatchObject({ baseline: false });
    const windowStart = new Date().toISOString();

    for (let i = 0; i < 3; i++) {
      await c.query(slow, [0.2]);
    }
    for (let i = 0; i < 5; i++) {
      await c.query(fast, [i]);
    }
    await expect(sampler().snapshotStatements()).resolves.toMatchObject({ baseline: false });

    const inWindow = await get<TopSqlResponseDto>(
      `/v1/ops/insights/top-sql?from=${encodeURIComponent(windowStart)}&limit=100`,
    );
    expect(inWindow).toMatchObject({ available: true, reason: null, from: windowStart });
    const [slowItem] = named(inWindow.items, 'insights_slow_statement');
    const [fastItem] = named(inWindow.items, 'insights_fast_statement');
    expect(slowItem).toMatchObject({ calls: 3, rows: 3 });
    expect(fastItem).toMatchObject({ calls: 5, rows: 5 });
    expect(slowItem.queryId).toMatch(/^-?\d+$/);
    expect(slowItem.meanTimeMs).toBeCloseTo(slowItem.totalTimeMs / 3, 6);
    expect(slowItem.sharedBlksHit + slowItem.sharedBlksRead).toBeGreaterThanOrEqual(0);
    // Ranked by the window's total time: the sleeping statement above the cheap one.
    expect(inWindow.items.indexOf(slowItem)).toBeLessThan(inWindow.items.indexOf(fastItem));
    expect(inWindow.items.map((i) => i.totalTimeMs)).toEqual(
      [...inWindow.items.map((i) => i.totalTimeMs)].sort((a, b) => b - a),
    );
    // Ran before the window: not in it.
    expect(named(inWindow.items, 'insights_before_window')).toEqual([]);
    // Normalised text: the parameter, never its value.
    expect(slowItem.query).toContain('pg_sleep($1)');

    // A window that covers both snapshots counts the earlier statement's delta (2 calls),
    // not its total since the statistics reset (3).
    const hour = await get<TopSqlResponseDto>('/v1/ops/insights/top-sql?window=1h&limit=100');
    expect(named(hour.items, 'insights_before_window')).toEqual([
      expect.objectContaining({ calls: 2 }),
    ]);
    expect(named(hour.items, 'insights_slow_statement')).toEqual([
      expect.objectContaining({ calls: 3 }),
    ]);
    const limited = await get<TopSqlResponseDto>('/v1/ops/insights/top-sql?window=1h&limit=1');
    expect(limited.items).toHaveLength(1);
  });

  it('top-sql survives pg_stat_statements_reset(): counters that went backwards count from zero', async () => {
    const c = await session('insights-test-reset');
    const marker = 'SELECT $1::int, $2::int AS insights_reset_statement';
    await sampler().snapshotStatements();
    for (let i = 0; i < 4; i++) {
      await c.query(marker, [i, i]);
    }
    await sampler().snapshotStatements();
    await superQuery(env, db.primaryPort, database, 'SELECT pg_stat_statements_reset()');
    const afterReset = new Date().toISOString();
    await c.query(marker, [1, 1]);
    await c.query(marker, [2, 2]);
    await sampler().snapshotStatements();

    const res = await get<TopSqlResponseDto>(
      `/v1/ops/insights/top-sql?from=${encodeURIComponent(afterReset)}&limit=100`,
    );
    expect(named(res.items, 'insights_reset_statement')).toEqual([
      expect.objectContaining({ calls: 2, rows: 2 }),
    ]);
    for (const item of res.items) {
      expect(item.calls).toBeGreaterThan(0);
      expect(item.totalTimeMs).toBeGreaterThanOrEqual(0);
      expect(item.rows).toBeGreaterThanOrEqual(0);
    }
  });

  it('a session blocked on a lock appears under its blocker in /locks and as Lock load in /waits', async () => {
    const holder = await session('insights-test-holder');
    const waiter = await session('insights-test-waiter');
    const holderPid = Number((await holder.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    const waiterPid = Number((await waiter.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    const id = String(
      (await holder.query(`INSERT INTO ops_probes (note) VALUES ('insights') RETURNING id`)).rows[0]
        .id,
    );
    await holder.query('BEGIN');
    await holder.query(`UPDATE ops_probes SET note = 'held' WHERE id = $1`, [id]);
    // A literal in the blocked statement: it must not come back in any answer.
    const blocked = waiter.query(
      `UPDATE ops_probes SET note = 'insights-secret-literal' WHERE id = $1`,
      [id],
    );

    const findWaiter = (r: LocksResponseDto): BlockingNodeDto | undefined =>
      r.trees.find((t) => t.pid === holderPid)?.blocking.find((b) => b.pid === waiterPid);
    const locks = await until(
      () => get<LocksResponseDto>('/v1/ops/insights/locks'),
      (r) => findWaiter(r) !== undefined,
    );
    const root = locks.trees.find((t) => t.pid === holderPid);
    expect(root).toMatchObject({
      pid: holderPid,
      blockedBy: [],
      applicationName: 'insights-test-holder',
      state: 'idle in transaction',
      usename: db.user,
    });
    expect(root?.xactStart).toEqual(expect.any(String));
    expect(root?.query).toContain('UPDATE ops_probes');
    const w = findWaiter(locks);
    expect(w).toMatchObject({
      pid: waiterPid,
      blockedBy: [holderPid],
      applicationName: 'insights-test-waiter',
      state: 'active',
      waitEventType: 'Lock',
      waitEvent: 'transactionid',
      waitingFor: { locktype: 'transactionid', mode: 'ShareLock' },
      blocking: [],
    });
    expect(w?.queryId).toMatch(/^-?\d+$/);
    expect(w?.query).toContain('UPDATE ops_probes SET note = ? WHERE id = $1');
    expect(w?.stateChange).toEqual(expect.any(String));
    expect(locks.blockedSessions).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(locks)).not.toContain('insights-secret-literal');

    // The load while the waiter waits: five samples that each see it.
    for (let i = 0; i < 5; i++) {
      await expect(sampler().sampleWaits()).resolves.toBeGreaterThanOrEqual(1);
    }
    await sampler().flush();
    const waits = await get<WaitsResponseDto>('/v1/ops/insights/waits?window=1h');
    expect(waits.samples).toBe(5);
    expect(waits.byWaitEventType).toContainEqual({ waitEventType: 'Lock', aas: 1 });
    expect(waits.byWaitEvent).toContainEqual({
      waitEventType: 'Lock',
      waitEvent: 'transactionid',
      aas: 1,
    });
    expect(waits.averageActiveSessions).toBeGreaterThanOrEqual(1);
    expect(waits.byStatement).toContainEqual(
      expect.objectContaining({
        queryId: w?.queryId,
        aas: 1,
        waits: [{ waitEventType: 'Lock', waitEvent: 'transactionid', aas: 1 }],
      }),
    );
    // A window that ends before the samples holds none of them.
    const earlier = await get<WaitsResponseDto>(
      `/v1/ops/insights/waits?to=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}&window=1h`,
    );
    expect(earlier).toMatchObject({ samples: 0, averageActiveSessions: 0, byWaitEvent: [] });

    await holder.query('ROLLBACK');
    await blocked;
    const after = await until(
      () => get<LocksResponseDto>('/v1/ops/insights/locks'),
      (r) => !r.trees.some((t) => t.pid === holderPid),
    );
    expect(after.trees.filter((t) => t.pid === holderPid)).toEqual([]);
  });

  it('an idle-in-transaction session appears in /connections with its age', async () => {
    const idle = await session('insights-test-idle');
    await idle.query('BEGIN');
    const pid = Number((await idle.query('SELECT pg_backend_pid() AS p')).rows[0].p);

    const res = await until(
      () => get<ConnectionsResponseDto>('/v1/ops/insights/connections'),
      (r) => r.idleInTransaction.some((s) => s.pid === pid && s.idleSeconds > 0),
    );
    const mine = res.idleInTransaction.find((s) => s.pid === pid);
    expect(mine).toMatchObject({
      pid,
      applicationName: 'insights-test-idle',
      usename: db.user,
      state: 'idle in transaction',
      query: 'SELECT pg_backend_pid() AS p',
    });
    expect(mine?.idleSeconds).toBeGreaterThan(0);
    expect(mine?.xactSeconds).toBeGreaterThanOrEqual(mine?.idleSeconds ?? Infinity);
    const group = res.groups.find(
      (g) => g.applicationName === 'insights-test-idle' && g.state === 'idle in transaction',
    );
    expect(group).toMatchObject({ usename: db.user, clientAddr: db.host, count: 1 });
    expect(group?.maxIdleInTransactionSeconds).toBeGreaterThan(0);
    expect(group?.oldestXactStart).toEqual(mine?.xactStart);
    expect(res.maxIdleInTransactionSeconds).toBeGreaterThanOrEqual(mine?.idleSeconds ?? Infinity);
    expect(res.total).toBeGreaterThanOrEqual(res.groups.length);
    await idle.query('ROLLBACK');
  });

  it('bad query parameters are 400 naming every one of them', async () => {
    const server = app.getHttpServer();
    const bad = await request(server)
      .get('/v1/ops/insights/top-sql?limit=0&window=5y&from=yesterday&to=soon')
      .set(bearer(KEYS.opsRead))
      .expect(400);
    const fields = (bad.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field);
    for (const param of ['limit', 'window', 'from', 'to']) {
      expect(fields).toContain(param);
    }
    const order = await request(server)
      .get('/v1/ops/insights/waits?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z&window=1h')
      .set(bearer(KEYS.opsRead))
      .expect(400);
    const orderMessage = (order.body as { message: string }).message;
    expect(orderMessage).toContain('to must be later than from');
    expect(orderMessage).toContain('window cannot be combined with both from and to');
    const unknown = await request(server)
      .get('/v1/ops/insights/waits?limit=101&bogus=1')
      .set(bearer(KEYS.opsRead))
      .expect(400);
    const unknownFields = (unknown.body as { errors: Array<{ field: string }> }).errors.map(
      (e) => e.field,
    );
    expect(unknownFields).toEqual(expect.arrayContaining(['limit', 'bogus']));
  });

  it.each(['top-sql', 'waits', 'locks', 'connections'])(
    '/v1/ops/insights/%s needs a key (401) with ops:read (403)',
    async (route) => {
      const server = app.getHttpServer();
      await request(server).get(`/v1/ops/insights/${route}`).expect(401);
      await request(server).get(`/v1/ops/insights/${route}`).set(bearer(KEYS.none)).expect(403);
      await request(server).get(`/v1/ops/insights/${route}`).set(bearer(KEYS.opsRead)).expect(200);
    },
  );

  it('the routes are in the OpenAPI document', async () => {
    const res = await request(app.getHttpServer()).get('/docs-json').expect(200);
    const paths = Object.keys((res.body as { paths: Record<string, unknown> }).paths);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/v1/ops/insights/top-sql',
        '/v1/ops/insights/waits',
        '/v1/ops/insights/locks',
        '/v1/ops/insights/connections',
      ]),
    );
  });

  it('the timer collects on one instance only, and another takes over when it stops', async () => {
    const timed = { INSIGHTS_SAMPLE_INTERVAL_MS: '100', INSIGHTS_SNAPSHOT_SECONDS: '5' };
    const fleetDb = await createTestDatabase(db, 'insights_fleet');
    const first = await bootApp(testConfig(env, fleetDb, timed));
    let firstOpen = true;
    let second: NestFastifyApplication | undefined;
    try {
      await until(
        async () => sampler(first).leading,
        (v) => v,
      );
      second = await bootApp(testConfig(env, fleetDb, timed));
      const secondSampler = sampler(second);
      await until(
        async () =>
          (await get<WaitsResponseDto>('/v1/ops/insights/waits?window=1h', second)).samples,
        (n) => n >= 1,
      );
      expect(sampler(first).leading).toBe(true);
      expect(secondSampler.leading).toBe(false);
      await first.close();
      firstOpen = false;
      const took = await until(
        async () => secondSampler.leading,
        (v) => v,
      );
      expect(took).toBe(true);
    } finally {
      await second?.close();
      if (firstOpen) {
        await first.close();
      }
      await dropTestDatabase(db, fleetDb);
    }
  });

  describe('a database without pg_stat_statements (an RDS parameter group without it)', () => {
    let bare: NestFastifyApplication;
    let bareDb: string;

    beforeAll(async () => {
      bareDb = await createTestDatabase(db, 'insights_nopss');
      // The stack creates the extension in every database (template1): remove it here.
      await superQuery(env, db.primaryPort, bareDb, 'DROP EXTENSION pg_stat_statements');
      bare = await bootApp(testConfig(env, bareDb, { INSIGHTS_SAMPLE_INTERVAL_MS: '0' }));
    });

    afterAll(async () => {
      await bare?.close();
      await dropTestDatabase(db, bareDb);
    });

    it('top-sql answers available:false with the reason; waits, locks and connections still work', async () => {
      await expect(sampler(bare).snapshotStatements()).resolves.toEqual({
        unavailable: expect.stringContaining('pg_stat_statements') as unknown,
      });
      const top = await get<TopSqlResponseDto>('/v1/ops/insights/top-sql?window=1h', bare);
      expect(top).toMatchObject({ available: false, items: [] });
      expect(top.reason).toMatch(/pg_stat_statements extension is not created in this database/);

      const busy = await session('insights-test-bare', bareDb);
      const busyPid = Number((await busy.query('SELECT pg_backend_pid() AS p')).rows[0].p);
      // settled at once into a value: its rejection (the cancel below) may arrive before the
      // canceller's own answer, and must not count as an unhandled rejection meanwhile
      const running = busy.query('SELECT pg_sleep(30) AS insights_bare_sleep').then(
        () => null,
        (err: Error) => err,
      );
      const seen = await until(
        () => sampler(bare).sampleWaits(),
        (n) => n >= 1,
      );
      expect(seen).toBeGreaterThanOrEqual(1);
      await sampler(bare).flush();
      const waits = await get<WaitsResponseDto>('/v1/ops/insights/waits?window=1h', bare);
      expect(waits.samples).toBeGreaterThanOrEqual(1);
      expect(waits.byWaitEvent).toContainEqual(
        expect.objectContaining({ waitEventType: 'Timeout', waitEvent: 'PgSleep' }),
      );
      const conns = await get<ConnectionsResponseDto>('/v1/ops/insights/connections', bare);
      expect(conns.groups).toContainEqual(
        expect.objectContaining({ applicationName: 'insights-test-bare', state: 'active' }),
      );
      await get<LocksResponseDto>('/v1/ops/insights/locks', bare);
      const canceller = await session('insights-test-cancel', bareDb);
      await canceller.query('SELECT pg_cancel_backend($1)', [busyPid]);
      expect((await running)?.message).toMatch(/cancel/);
    });
  });
});
