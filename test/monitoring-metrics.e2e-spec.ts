import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import request from 'supertest';
import { JobLeadershipService } from '../src/database/job-leadership.service.js';
import { AdvisoryLock } from '../src/database/locks.js';
import { TopologyService } from '../src/database/topology.service.js';
import { readRuleValue } from '../src/alerting/metric-reader.js';
import { MetricsService } from '../src/monitoring/metrics.service.js';
import { MonitoringSamplerService } from '../src/monitoring/monitoring-sampler.service.js';
import { bootApp, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  ownerQuery,
  StackDb,
  stackDb,
} from './support/databases.js';
import { redisClient } from './support/redis.js';
import { stack, stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) {
      continue;
    }
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sampler's figures: sampled by hand (MONITORING_DB_SAMPLE_SECONDS=0), read over HTTP. */
describe('monitoring metrics (sampler of PostgreSQL, Redis, PgBouncer; real stack)', () => {
  let app: NestFastifyApplication;
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let primary: string;
  let replica: string;

  const config = (): ReturnType<typeof testConfig> =>
    testConfig(env, database, {
      MONITORING_DB_SAMPLE_SECONDS: '0',
      // the CPU estimate over 2 CPUs (window: 60 samples, as the interval is 0)
      MONITORING_DB_VCPUS: '2',
      // SHOW POOLS of this test's own database (PgBouncer's `*` entry serves it).
      PGBOUNCER_DB_RW: database,
      PGBOUNCER_DB_RO: database,
    });

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    [primary, replica] = env.DB_NODES.split(',');
    database = await createTestDatabase(db, 'monmetrics');
    app = await bootApp(config());
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  async function scrape(target = app): Promise<Sample[]> {
    const res = await request(target.getHttpServer()).get('/metrics').expect(200);
    return parseMetrics(res.text);
  }

  function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
    return samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }

  function one(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
    const found = find(samples, name, labels);
    expect({ name, labels, found: found.length }).toEqual({ name, labels, found: 1 });
    return found[0].value;
  }

  const sampler = (target = app): MonitoringSamplerService => target.get(MonitoringSamplerService);

  function client(port: number, user = db.user, password = db.password): pg.Client {
    const c = new pg.Client({ host: db.host, port, user, password, database, ssl: db.ssl });
    c.on('error', () => undefined);
    return c;
  }

  it('exports every sampled figure, per node and role, and /metrics passes promtool', async () => {
    // A keyspace miss, so Redis has a hit ratio to report.
    const redis = await redisClient(env);
    await redis.get('dbu-monitoring-test-no-such-key');
    await redis.close();

    const report = await sampler().sample();
    expect(report).toEqual({
      leader: true,
      nodes: expect.arrayContaining([
        { node: primary, role: 'primary', ok: true },
        { node: replica, role: 'replica', ok: true },
      ]) as unknown,
      redis: true,
      pgbouncer: true,
    });
    const s = await scrape();
    const P = { node: primary, role: 'primary' };
    const R = { node: replica, role: 'replica' };

    expect(one(s, 'dbu_monitoring_sampler_leader')).toBe(1);
    for (const n of [P, R]) {
      expect(one(s, 'dbu_db_max_connections', n)).toBe(300);
      expect(find(s, 'dbu_db_connections', n).map((x) => x.labels.state)).toEqual(
        expect.arrayContaining(['active', 'idle', 'idle in transaction']),
      );
      expect(one(s, 'dbu_db_commits_total', n)).toBeGreaterThan(0);
      expect(one(s, 'dbu_db_rollbacks_total', n)).toBeGreaterThanOrEqual(0);
      expect(one(s, 'dbu_db_blocks_hit_total', n)).toBeGreaterThan(0);
      const ratio = one(s, 'dbu_db_cache_hit_ratio', n);
      expect(ratio).toBeGreaterThan(0);
      expect(ratio).toBeLessThanOrEqual(1);
      expect(one(s, 'dbu_db_deadlocks_total', n)).toBeGreaterThanOrEqual(0);
      expect(one(s, 'dbu_db_temp_bytes_total', n)).toBeGreaterThanOrEqual(0);
      expect(one(s, 'dbu_db_longest_transaction_seconds', n)).toBeGreaterThanOrEqual(0);
    }
    // The app's leadership session is idle on the primary.
    expect(one(s, 'dbu_db_connections', { ...P, state: 'idle' })).toBeGreaterThanOrEqual(1);
    // Writer-only figures exist for the writer alone.
    expect(one(s, 'dbu_db_wal_bytes_total', P)).toBeGreaterThan(0);
    expect(one(s, 'dbu_db_size_bytes', P)).toBeGreaterThan(1_000_000);
    expect(one(s, 'dbu_db_xid_wraparound_age', P)).toBeGreaterThan(0);
    expect(one(s, 'dbu_db_replicas_streaming', P)).toBeGreaterThanOrEqual(1);
    expect(one(s, 'dbu_db_archiver_failures_total', P)).toBeGreaterThanOrEqual(0);
    expect(one(s, 'dbu_db_archived_wal_files_total', P)).toBeGreaterThanOrEqual(0);
    for (const name of [
      'dbu_db_wal_bytes_total',
      'dbu_db_size_bytes',
      'dbu_db_xid_wraparound_age',
    ]) {
      expect(find(s, name, { node: replica })).toEqual([]);
    }
    // Replication lag: the replica's, never the writer's.
    expect(one(s, 'dbu_db_replication_lag_seconds', R)).toBeGreaterThanOrEqual(0);
    expect(one(s, 'dbu_db_replication_lag_bytes', R)).toBeGreaterThanOrEqual(0);
    expect(find(s, 'dbu_db_replication_lag_bytes', { node: primary })).toEqual([]);

    // Redis (stack: maxmemory 1gb).
    const used = one(s, 'dbu_redis_memory_used_bytes');
    expect(used).toBeGreaterThan(0);
    expect(one(s, 'dbu_redis_memory_max_bytes')).toBe(1024 ** 3);
    expect(one(s, 'dbu_redis_memory_utilization')).toBeCloseTo(used / 1024 ** 3, 10);
    expect(one(s, 'dbu_redis_connected_clients')).toBeGreaterThanOrEqual(1);
    // A Redis started a moment ago may not have had a tick of system time yet (seen: 0).
    const redisUser = one(s, 'dbu_redis_cpu_seconds_total', { mode: 'user' });
    const redisSys = one(s, 'dbu_redis_cpu_seconds_total', { mode: 'sys' });
    expect(redisSys).toBeGreaterThanOrEqual(0);
    expect(redisUser + redisSys).toBeGreaterThan(0);
    expect(one(s, 'dbu_redis_keyspace_misses_total')).toBeGreaterThanOrEqual(1);
    expect(one(s, 'dbu_redis_evicted_keys_total')).toBeGreaterThanOrEqual(0);
    const hitRatio = one(s, 'dbu_redis_hit_ratio');
    expect(hitRatio).toBeGreaterThanOrEqual(0);
    expect(hitRatio).toBeLessThan(1);

    // PgBouncer's pools (spec: pool_utilization, connection_wait_time, active_connections).
    for (const name of [
      'dbu_pool_utilization',
      'dbu_pool_wait_seconds',
      'dbu_pool_active_connections',
      'dbu_pool_waiting',
      'dbu_pool_size',
    ]) {
      expect(one(s, name, { pool: 'pgbouncer' })).toBeGreaterThanOrEqual(0);
    }
    // The process (prom-client's default metrics, standard names).
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(one(s, name)).toBeGreaterThan(0);
    }
    expect(one(s, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    // Counted from the first scrape on, one series per node.
    for (const node of [primary, replica]) {
      expect(one(s, 'dbu_slow_queries_total', { node })).toBeGreaterThanOrEqual(0);
      expect(one(s, 'dbu_db_connection_failures_total', { node })).toBeGreaterThanOrEqual(0);
    }
    expect(one(s, 'dbu_monitoring_sample_failures_total', { source: 'database' })).toBe(0);

    const text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    expect(text).toContain('# TYPE dbu_pool_scaling_events_total counter');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stderr + check.stdout).not.toMatch(
      /error while linting|text format parsing error/,
    );
    expect([0, 3]).toContain(check.status);
  });

  it('reports the lag of a replica whose replay is paused, labelled by that replica', async () => {
    const paused = client(db.replicaPort);
    await paused.connect();
    try {
      await paused.query('SELECT pg_wal_replay_pause()');
      await ownerQuery(
        db,
        db.primaryPort,
        database,
        'CREATE TABLE lag_filler AS SELECT g, repeat(md5(g::text), 10) AS pad FROM generate_series(1, 20000) g',
      );
      await ownerQuery(db, db.primaryPort, database, 'SELECT pg_switch_wal()').catch(
        () => undefined,
      );
      await app.get(TopologyService).refresh();
      await sampler().sample();
      const s = await scrape();
      expect(
        one(s, 'dbu_db_replication_lag_bytes', { node: replica, role: 'replica' }),
      ).toBeGreaterThan(1_000_000);
    } finally {
      await paused.query('SELECT pg_wal_replay_resume()');
      await paused.end();
    }
    await until(
      async () => {
        await app.get(TopologyService).refresh();
        await sampler().sample();
        return one(await scrape(), 'dbu_db_replication_lag_bytes', { node: replica });
      },
      (lag) => lag < 1_000_000,
    );
    expect(one(await scrape(), 'dbu_db_replication_lag_bytes', { node: replica })).toBeLessThan(
      1_000_000,
    );
  });

  it('counts a real deadlock', async () => {
    await ownerQuery(
      db,
      db.primaryPort,
      database,
      `CREATE TABLE deadlock_pair (id int PRIMARY KEY, v int); INSERT INTO deadlock_pair VALUES (1, 0), (2, 0); GRANT UPDATE, SELECT ON deadlock_pair TO ${db.user}`,
    );
    await sampler().sample();
    const before = one(await scrape(), 'dbu_db_deadlocks_total', { node: primary });

    const a = client(db.primaryPort);
    const b = client(db.primaryPort);
    await Promise.all([a.connect(), b.connect()]);
    await a.query('BEGIN');
    await b.query('BEGIN');
    await a.query('UPDATE deadlock_pair SET v = 1 WHERE id = 1');
    await b.query('UPDATE deadlock_pair SET v = 1 WHERE id = 2');
    const outcomes = await Promise.allSettled([
      a.query('UPDATE deadlock_pair SET v = 2 WHERE id = 2'),
      b.query('UPDATE deadlock_pair SET v = 2 WHERE id = 1'),
    ]);
    const codes = outcomes.map((o) =>
      o.status === 'rejected' ? (o.reason as { code?: string }).code : 'ok',
    );
    expect(codes.sort()).toEqual(['40P01', 'ok']);
    await a.query('ROLLBACK');
    await b.query('ROLLBACK');
    // A backend flushes its statistics at the latest when it exits.
    await Promise.all([a.end(), b.end()]);

    const after = await until(
      async () => {
        await sampler().sample();
        return one(await scrape(), 'dbu_db_deadlocks_total', { node: primary });
      },
      (v) => v >= before + 1,
    );
    expect(after).toBe(before + 1);
  });

  it('shows an open transaction as the longest transaction age, and drops it once committed', async () => {
    const long = client(db.primaryPort);
    await long.connect();
    const watcher = client(db.primaryPort);
    await watcher.connect();
    try {
      await long.query('BEGIN');
      await long.query('SELECT txid_current()');
      const pid = (await long.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      // PostgreSQL's clock says how old the transaction is (no wall clock in the test).
      const age = (): Promise<number> =>
        watcher
          .query<{ age: number }>(
            'SELECT extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age FROM pg_stat_activity WHERE pid = $1',
            [pid],
          )
          .then((r) => r.rows[0].age);
      expect(await until(age, (v) => v >= 2)).toBeGreaterThanOrEqual(2);
      const seen = await age();
      await sampler().sample();
      const open = one(await scrape(), 'dbu_db_longest_transaction_seconds', {
        node: primary,
        role: 'primary',
      });
      expect(open).toBeGreaterThanOrEqual(seen);
      await long.query('COMMIT');
      await sampler().sample();
      const closed = one(await scrape(), 'dbu_db_longest_transaction_seconds', { node: primary });
      expect(closed).toBeLessThan(seen);
    } finally {
      await long.end();
      await watcher.end();
    }
  });

  it('shows a transaction held through PgBouncer as an active server connection', async () => {
    const through = client(Number(env.PGBOUNCER_PORT));
    await through.connect();
    try {
      await through.query('BEGIN');
      await through.query('SELECT 1');
      expect((await sampler().sample()).pgbouncer).toBe(true);
      let s = await scrape();
      expect(one(s, 'dbu_pool_active_connections', { pool: 'pgbouncer' })).toBeGreaterThanOrEqual(
        1,
      );
      expect(one(s, 'dbu_pgbouncer_clients_active')).toBeGreaterThanOrEqual(1);
      await through.query('COMMIT');
      await sampler().sample();
      s = await scrape();
      expect(one(s, 'dbu_pool_active_connections', { pool: 'pgbouncer' })).toBe(0);
    } finally {
      await through.end();
    }
  });

  it('counts a failed Redis sample, drops the Redis figures and keeps serving when Redis stops', async () => {
    const failures = async (): Promise<number> =>
      one(await scrape(), 'dbu_monitoring_sample_failures_total', { source: 'redis' });
    const before = await failures();
    await stack('stop', 'redis');
    try {
      const report = await sampler().sample();
      expect(report.redis).toBe(false);
      expect(report.leader).toBe(true);
      expect(await failures()).toBe(before + 1);
      const s = await scrape();
      expect(find(s, 'dbu_redis_memory_used_bytes')).toEqual([]);
      // The database figures are still sampled; the service still answers.
      expect(one(s, 'dbu_db_max_connections', { node: primary })).toBe(300);
      await request(app.getHttpServer()).get('/health/live').expect(200);
    } finally {
      await stack('start', 'redis');
    }
    const back = await until(
      () => sampler().sample(),
      (r) => r.redis,
    );
    expect(back.redis).toBe(true);
    expect(one(await scrape(), 'dbu_redis_memory_used_bytes')).toBeGreaterThan(0);
  });

  it("estimates a node's CPU use from sessions on a CPU, and the default database_cpu_high rule reads it", async () => {
    const rule = config().alerting.rules.find((r) => r.name === 'database_cpu_high')!;
    const cpu = async (): Promise<{ primary: number; replica: number }> => {
      const s = await scrape();
      return {
        primary: one(s, 'dbu_db_cpu_utilization_percent', { node: primary, role: 'primary' }),
        replica: one(s, 'dbu_db_cpu_utilization_percent', { node: replica, role: 'replica' }),
      };
    };
    const window = async (): Promise<void> => {
      for (let i = 0; i < 60; i++) {
        await sampler().sample();
      }
    };
    // Two sessions spinning on the primary's CPUs (a PL/pgSQL loop waits on nothing).
    const spinners = [client(db.primaryPort), client(db.primaryPort)];
    const watcher = client(db.primaryPort);
    await watcher.connect();
    const running: Array<Promise<unknown>> = [];
    try {
      for (const s of spinners) {
        await s.connect();
        await s.query("SET application_name = 'cpu-spinner'");
        running.push(
          s
            .query('DO $$ DECLARE i bigint := 0; BEGIN LOOP i := i + 1; END LOOP; END $$')
            .catch((e: Error) => e),
        );
      }
      await until(
        () =>
          watcher
            .query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE application_name = 'cpu-spinner' AND state = 'active' AND wait_event IS NULL`,
            )
            .then((r) => r.rows[0].n),
        (n) => n === 2,
      );
      await window();
      const busy = await cpu();
      // at least 2 sessions on a CPU in every sample, over 2 CPUs
      expect(busy.primary).toBe(100);
      expect(busy.replica).toBeLessThan(100);
      const value = await readRuleValue(
        app.get(MetricsService).registry,
        rule,
        new Map(),
        Date.now(),
      );
      expect(value).toBe(100);
      expect(value! > rule.threshold).toBe(true);
    } finally {
      await watcher.query(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cpu-spinner'",
      );
      expect((await Promise.all(running)).every((r) => r instanceof Error)).toBe(true);
      await Promise.all(spinners.map((s) => s.end()));
      await watcher.end();
    }
    await window();
    // the spinners are gone: the minute's mean falls under the rule's threshold
    expect((await cpu()).primary).toBeLessThan(rule.threshold);
  });

  it('exports cluster-wide figures from the sampling leader only; a lost leadership removes them', async () => {
    const other = await bootApp(config());
    try {
      expect((await sampler().sample()).leader).toBe(true);
      expect((await sampler(other).sample()).leader).toBe(false);
      let mine = await scrape(other);
      expect(one(mine, 'dbu_monitoring_sampler_leader')).toBe(0);
      expect(find(mine, 'dbu_db_connections')).toEqual([]);
      expect(find(mine, 'dbu_db_commits_total')).toEqual([]);

      // The first instance loses its leadership session (as when its link to the writer drops).
      await ownerQuery(
        db,
        db.primaryPort,
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'database-unit:jobs' AND datname = current_database()",
      );
      await until(
        async () => app.get(JobLeadershipService).isLeader(AdvisoryLock.MonitoringSampler),
        (held) => !held,
      );
      expect((await sampler(other).sample()).leader).toBe(true);
      expect((await sampler().sample()).leader).toBe(false);

      const old = await scrape();
      expect(one(old, 'dbu_monitoring_sampler_leader')).toBe(0);
      expect(find(old, 'dbu_db_connections')).toEqual([]);
      expect(find(old, 'dbu_db_replication_lag_bytes')).toEqual([]);
      mine = await scrape(other);
      expect(one(mine, 'dbu_monitoring_sampler_leader')).toBe(1);
      expect(one(mine, 'dbu_db_max_connections', { node: primary })).toBe(300);
    } finally {
      await other.close();
    }
  });
});
