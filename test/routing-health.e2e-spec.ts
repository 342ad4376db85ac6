import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { stack, stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

interface Probe {
  id: string;
  servedBy: { role: string; port: number; inRecovery: boolean };
}

interface TopologyNode {
  name: string;
  healthy: boolean;
  lagBytes: number | null;
  readExclusion: string | null;
}

/**
 * Health- and lag-aware routing on the shared stack (one replica): lag bound,
 * read-your-writes by LSN, a replica killed under load. FAILOVER_MODE stays off.
 */
describe('routing: lag bound, read-your-writes by LSN, dead replica (real stack)', () => {
  let env: Record<string, string>;
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let replica: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    replica = `127.0.0.1:${db.replicaPort}`;
    database = await createTestDatabase(db, 'routinghealth');
    app = await bootApp(
      testConfig(env, database, {
        DB_HEALTH_INTERVAL_MS: '300',
        DB_HEALTH_TIMEOUT_MS: '1000',
        DB_HEALTHY_THRESHOLD: '2',
        DB_READ_MAX_LAG_BYTES: '65536',
        DB_READ_MAX_LAG_SECONDS: '3600',
      }),
    );
  });

  afterAll(async () => {
    await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()').catch(
      () => undefined,
    );
    await stack('start', 'replica');
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const http = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();

  async function write(note = 'r'): Promise<{ probe: Probe; lsn: string }> {
    const res = await request(http())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note })
      .expect(201);
    expect(res.headers['x-write-lsn']).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    return { probe: res.body as Probe, lsn: res.headers['x-write-lsn'] };
  }

  async function node(name: string): Promise<TopologyNode> {
    const res = await request(http()).get('/v1/ops/topology').set(bearer(KEYS.opsRead)).expect(200);
    return (res.body.nodes as TopologyNode[]).find((n) => n.name === name)!;
  }

  it('with x-write-lsn a read never returns the pre-write state; without it the lagging replica may', async () => {
    await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_pause()');
    try {
      const { probe, lsn } = await write('after-pause');
      // The replica has not replayed the write: the LSN-gated read goes to the primary.
      for (let i = 0; i < 5; i++) {
        const res = await request(http())
          .get(`/v1/ops/probes/${probe.id}`)
          .set(bearer(KEYS.opsRead))
          .set('x-write-lsn', lsn)
          .expect(200);
        expect(res.body.servedBy.role).toBe('primary');
      }
      // Without the header the (paused, still within the byte bound) replica answers: the
      // row is not there yet — the failure mode the header exists for.
      const stale = await request(http())
        .get(`/v1/ops/probes/${probe.id}`)
        .set(bearer(KEYS.opsRead));
      expect(stale.status).toBe(404);
    } finally {
      await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()');
    }
    // Caught up: the same LSN-gated read is served by the replica again.
    const { probe, lsn } = await write('after-resume');
    const served = await until(
      async () =>
        (
          await request(http())
            .get(`/v1/ops/probes/${probe.id}`)
            .set(bearer(KEYS.opsRead))
            .set('x-write-lsn', lsn)
        ).body as Probe,
      (p) => p.servedBy?.role === 'replica',
    );
    expect(served.servedBy.role).toBe('replica');
  });

  it("checks a read's floor on the replica only when no probe or earlier check saw it replayed", async () => {
    // Round trips of the floor check on the replica, counted by pg_stat_statements.
    const checks = async (): Promise<number> =>
      (
        await superQuery(
          env,
          db.replicaPort,
          database,
          `SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements
            WHERE query LIKE 'SELECT pg_last_wal_replay_lsn()::text AS lsn%'`,
        )
      ).rows[0].n as number;
    const read = (id: string, lsn: string) =>
      request(http())
        .get(`/v1/ops/probes/${id}`)
        .set(bearer(KEYS.opsRead))
        .set('x-write-lsn', lsn)
        .expect(200);
    const known = await write('known');
    await until(
      async () => (await read(known.probe.id, known.lsn)).body as Probe,
      (p) => p.servedBy?.role === 'replica',
    );
    const before = await checks();
    for (let i = 0; i < 10; i++) {
      expect((await read(known.probe.id, known.lsn)).body.servedBy.role).toBe('replica');
    }
    expect(await checks()).toBe(before);
    // A floor the replica has not replayed (replay paused): checked, and read on the primary.
    await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_pause()');
    try {
      const unknown = await write('unknown');
      expect((await read(unknown.probe.id, unknown.lsn)).body.servedBy.role).toBe('primary');
      expect(await checks()).toBeGreaterThan(before);
    } finally {
      await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()');
    }
  });

  it('a malformed x-write-lsn is a 400 naming the header', async () => {
    const res = await request(http())
      .get('/v1/ops/topology')
      .set(bearer(KEYS.opsRead))
      .set('x-write-lsn', 'yesterday')
      .expect(400);
    expect(JSON.stringify(res.body)).toContain('x-write-lsn');
  });

  it('skips a replica whose lag exceeds the bound, and takes it back once it caught up', async () => {
    await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_pause()');
    try {
      // Enough WAL to go over 64 KiB of lag.
      for (let i = 0; i < 40; i++) {
        await write('x'.repeat(190));
      }
      await superQuery(env, db.primaryPort, database, `SELECT pg_switch_wal()`).catch(
        () => undefined,
      );
      const lagging = await until(
        () => node(replica),
        (n) => n.readExclusion?.startsWith('lag') ?? false,
      );
      expect(lagging.readExclusion).toMatch(/^lag \d+ bytes > 65536$/);
      const { probe } = await write('while-lagging');
      const res = await request(http())
        .get(`/v1/ops/probes/${probe.id}`)
        .set(bearer(KEYS.opsRead))
        .expect(200);
      expect(res.body.servedBy.role).toBe('primary');
    } finally {
      await superQuery(env, db.replicaPort, 'postgres', 'SELECT pg_wal_replay_resume()');
    }
    const back = await until(
      () => node(replica),
      (n) => n.readExclusion === null,
    );
    expect(back.readExclusion).toBeNull();
  });

  it('a replica killed under reads: no failed request, out of rotation within one request, back after the healthy threshold', async () => {
    const { probe } = await write('kill');
    await until(
      async () =>
        (await request(http()).get(`/v1/ops/probes/${probe.id}`).set(bearer(KEYS.opsRead))).status,
      (s) => s === 200,
    );
    let stop = false;
    let failed = 0;
    let served = 0;
    const reader = (async () => {
      while (!stop) {
        const res = await request(http())
          .get(`/v1/ops/probes/${probe.id}`)
          .set(bearer(KEYS.opsRead));
        if (res.status === 200) {
          served += 1;
        } else {
          failed += 1;
        }
      }
    })();
    await sleep(300);
    await stack('kill', 'replica');
    const down = await until(
      () => node(replica),
      (n) => !n.healthy,
      5_000,
    );
    expect(down.healthy).toBe(false);
    await sleep(500);
    stop = true;
    await reader;
    expect(failed).toBe(0);
    expect(served).toBeGreaterThan(10);

    await stack('start', 'replica');
    const back = await until(
      () => node(replica),
      (n) => n.healthy && n.readExclusion === null,
      30_000,
    );
    expect(back.healthy).toBe(true);
    const res = await until(
      async () =>
        (await request(http()).get(`/v1/ops/probes/${probe.id}`).set(bearer(KEYS.opsRead)))
          .body as Probe,
      (p) => p.servedBy?.role === 'replica',
    );
    expect(res.servedBy.role).toBe('replica');
  });
});
