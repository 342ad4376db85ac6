import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { testSsl } from './support/databases.js';
import { IsolatedStack, REPO_ROOT } from './support/stack.js';
import { until } from './support/wait.js';

const PORTS = { primary: 27462, replica: 27463, pgbouncer: 27562, redis: 27399 };
const EXTRA = 27464;

interface TopologyNode {
  name: string;
  healthy: boolean;
  discovered: boolean;
  readExclusion: string | null;
}

/** REPLICA_AUTOSCALING_LOCAL_PORTS of the autoscaling tests: room for two; max 2 allows one. */
const FLEET_PORTS = [27465, 27466];

/**
 * One throwaway stack (primary and one replica) for the tests of several replicas: the
 * round robin over a second one added by hand, then the autoscaler adding and dropping one.
 */
const iso = new IsolatedStack(join(REPO_ROOT, '.stack', 'replicas'), PORTS);

/** Replicas added to the stack; a run that was killed may have left them running. */
async function dropExtras(): Promise<void> {
  for (const port of [EXTRA, ...FLEET_PORTS]) {
    await iso.run('drop-replica', String(port)).catch(() => '');
  }
}

beforeAll(async () => {
  await dropExtras();
  await iso.run('down').catch(() => '');
  await rm(iso.dir, { recursive: true, force: true });
  await iso.run('up');
});

afterAll(async () => {
  await dropExtras();
  await iso.run('down').catch(() => '');
  await rm(iso.dir, { recursive: true, force: true });
});

/** Two replicas (the stack's plus `docker/stack.sh add-replica`): round robin, one killed. */
describe('round robin over two replicas (isolated real stack)', () => {
  let app: NestFastifyApplication;
  let probeId: string;
  const replicaA = `127.0.0.1:${PORTS.replica}`;
  const replicaB = `127.0.0.1:${EXTRA}`;

  beforeAll(async () => {
    await iso.run('add-replica', String(EXTRA));
    const settings = await iso.settings();
    app = await bootApp(
      testConfig(settings, 'recipes', {
        DB_NODES: `127.0.0.1:${PORTS.primary},${replicaA},${replicaB}`,
        DB_MIGRATIONS_RUN: 'true',
        DB_HEALTH_INTERVAL_MS: '300',
        DB_HEALTH_TIMEOUT_MS: '1000',
        DB_HEALTHY_THRESHOLD: '2',
      }),
    );
    const res = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 'rr' })
      .expect(201);
    probeId = (res.body as { id: string }).id;
  });

  afterAll(async () => {
    await app?.close();
    await iso.run('drop-replica', String(EXTRA));
  });

  const read = () =>
    request(app.getHttpServer()).get(`/v1/ops/probes/${probeId}`).set(bearer(KEYS.opsRead));
  const topology = async (): Promise<TopologyNode[]> =>
    (
      await request(app.getHttpServer())
        .get('/v1/ops/topology')
        .set(bearer(KEYS.opsRead))
        .expect(200)
    ).body.nodes as TopologyNode[];

  it('alternates reads between the two replicas', async () => {
    // Both replicas must have the probe row before reads can alternate on it.
    await until(
      async () => (await Promise.all([read(), read()])).map((r) => r.status),
      (s) => s.every((x) => x === 200),
    );
    const ports: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await read().expect(200);
      ports.push((res.body as { servedBy: { port: number } }).servedBy.port);
    }
    expect(new Set(ports)).toEqual(new Set([PORTS.replica, EXTRA]));
    for (let i = 1; i < ports.length; i++) {
      expect(ports[i]).not.toBe(ports[i - 1]);
    }
  });

  it('one replica killed: no failed read, out of rotation within one request; back after the healthy threshold', async () => {
    await iso.run('kill-replica', String(EXTRA));
    const statuses: number[] = [];
    const ports: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await read();
      statuses.push(res.status);
      ports.push((res.body as { servedBy: { port: number } }).servedBy?.port);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    // The first read that hit the dead replica was retried elsewhere; none after it went there.
    expect(ports.every((p) => p === PORTS.replica)).toBe(true);
    expect((await topology()).find((n) => n.name === replicaB)?.healthy).toBe(false);

    await iso.run('start-replica', String(EXTRA));
    const back = await until(
      topology,
      (nodes) => nodes.find((n) => n.name === replicaB)?.readExclusion === null,
      20_000,
    );
    expect(back.find((n) => n.name === replicaB)?.healthy).toBe(true);
    const again = await until(
      async () => {
        const got: number[] = [];
        for (let i = 0; i < 4; i++) {
          got.push(((await read()).body as { servedBy: { port: number } }).servedBy.port);
        }
        return got;
      },
      (got) => got.includes(EXTRA),
    );
    expect(again).toContain(EXTRA);
  });
});

function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), done(true)));
    s.once('error', () => (s.destroy(), done(false)));
  });
}

/**
 * The replica autoscaler on the local stack (REPLICA_AUTOSCALING_PROVIDER=local), end to end
 * on real PostgreSQL: a CPU-bound session on the stack's replica pushes the fleet's CPU measure
 * over the spec's 70 %; the leader adds a replica with `docker/stack.sh add-replica`; both
 * service instances (one routing directly, one through PgBouncer) discover it and send reads
 * to it once it is healthy; when the load ends the leader takes it out of rotation and drops
 * it, and no read fails on the way.
 */
describe('replica autoscaling on the local stack (isolated real stack)', () => {
  const apps: NestFastifyApplication[] = [];
  const load: pg.Client[] = [];
  let probeId: string;
  const added = `127.0.0.1:${FLEET_PORTS[0]}`;

  beforeAll(async () => {
    const settings = await iso.settings();
    const common = {
      DB_NODES: `127.0.0.1:${PORTS.primary},127.0.0.1:${PORTS.replica}`,
      DB_HEALTH_INTERVAL_MS: '300',
      DB_HEALTH_TIMEOUT_MS: '1000',
      DB_HEALTHY_THRESHOLD: '2',
      REPLICA_AUTOSCALING_ENABLED: 'true',
      REPLICA_AUTOSCALING_PROVIDER: 'local',
      REPLICA_AUTOSCALING_MIN: '1',
      REPLICA_AUTOSCALING_MAX: '2',
      // the spec's thresholds; short windows so the demonstration takes seconds
      REPLICA_AUTOSCALING_CPU_PERCENT: '70',
      REPLICA_AUTOSCALING_CONNECTIONS_PERCENT: '80',
      REPLICA_AUTOSCALING_SCALE_OUT_SECONDS: '3',
      REPLICA_AUTOSCALING_SCALE_IN_SECONDS: '3',
      REPLICA_AUTOSCALING_SCALE_OUT_COOLDOWN_SECONDS: '0',
      REPLICA_AUTOSCALING_SCALE_IN_COOLDOWN_SECONDS: '5',
      REPLICA_AUTOSCALING_INTERVAL_SECONDS: '1',
      REPLICA_AUTOSCALING_DISCOVERY_SECONDS: '1',
      REPLICA_AUTOSCALING_RETRY_SECONDS: '2',
      REPLICA_AUTOSCALING_LOCAL_PORTS: `${FLEET_PORTS[0]}-${FLEET_PORTS[1]}`,
      // one CPU-bound session is then 100 % (the machine has more; this keeps the test light)
      REPLICA_AUTOSCALING_LOCAL_VCPUS: '1',
      REPLICA_AUTOSCALING_LOCAL_STACK_DIR: iso.dir,
    };
    apps.push(
      await bootApp(testConfig(settings, 'recipes', { ...common, DB_MIGRATIONS_RUN: 'true' })),
    );
    apps.push(
      await bootApp(
        testConfig(settings, 'recipes', {
          ...common,
          DB_ROUTE_VIA_PGBOUNCER: 'true',
          PGBOUNCER_DB_RW: settings.PGBOUNCER_DB_RW,
          PGBOUNCER_DB_RO: settings.PGBOUNCER_DB_RO,
        }),
      ),
    );
    const res = await request(apps[0].getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 'autoscaling' })
      .expect(201);
    probeId = (res.body as { id: string }).id;
    {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: PORTS.replica,
        user: settings.DB_USER,
        password: settings.DB_PASSWORD,
        database: 'recipes',
        ssl: testSsl(settings),
        application_name: 'autoscaling-test-load',
      });
      c.on('error', () => undefined);
      await c.connect();
      load.push(c);
    }
  });

  afterAll(async () => {
    await Promise.all(load.map((c) => c.end().catch(() => undefined)));
    for (const app of apps) {
      await app.close();
    }
    for (const port of FLEET_PORTS) {
      await iso.run('drop-replica', String(port)).catch(() => '');
    }
  });

  const read = (app: NestFastifyApplication) =>
    request(app.getHttpServer())
      .get(`/v1/ops/probes/${probeId}`)
      .set(bearer(KEYS.opsRead))
      .set('x-consistency', 'eventual');
  const topology = async (app: NestFastifyApplication): Promise<TopologyNode[]> =>
    (
      await request(app.getHttpServer())
        .get('/v1/ops/topology')
        .set(bearer(KEYS.opsRead))
        .expect(200)
    ).body.nodes as TopologyNode[];
  /** The ports that served `n` reads from `app`, and their statuses. */
  const reads = async (app: NestFastifyApplication, n: number) => {
    const ports: number[] = [];
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) {
      const res = await read(app);
      statuses.push(res.status);
      ports.push((res.body as { servedBy?: { port: number } }).servedBy?.port ?? 0);
    }
    return { ports, statuses };
  };

  it('idle: one replica (the stack’s own), nothing added', async () => {
    await new Promise((r) => setTimeout(r, 4_000)); // more than a scale-out window of evaluations
    for (const app of apps) {
      const nodes = await topology(app);
      expect(nodes.map((n) => n.name).sort()).toEqual([
        `127.0.0.1:${PORTS.primary}`,
        `127.0.0.1:${PORTS.replica}`,
      ]);
      const { ports, statuses } = await reads(app, 4);
      expect(statuses).toEqual([200, 200, 200, 200]);
      expect(new Set(ports)).toEqual(new Set([PORTS.replica]));
    }
    expect(await listening(FLEET_PORTS[0])).toBe(false);
  });

  it('under load a replica is added, discovered by both instances and given reads once healthy', async () => {
    // a CPU-bound session on the only replica (a PL/pgSQL loop: on a CPU, waiting on no
    // event): 1 of REPLICA_AUTOSCALING_LOCAL_VCPUS=1 = 100 % ≥ 70 %
    for (const c of load) {
      void c
        .query(
          `DO $$ DECLARE until timestamptz := clock_timestamp() + interval '300 s';
           BEGIN WHILE clock_timestamp() < until LOOP PERFORM md5(random()::text); END LOOP; END $$`,
        )
        .catch(() => undefined);
    }
    for (const app of apps) {
      const nodes = await until(
        () => topology(app),
        (ns) => ns.some((n) => n.name === added && n.readExclusion === null),
        120_000,
        250,
      );
      const node = nodes.find((n) => n.name === added);
      expect(node).toMatchObject({ discovered: true, healthy: true, readExclusion: null });
    }
    for (const app of apps) {
      const { ports, statuses } = await until(
        () => reads(app, 6),
        (r) => r.ports.includes(FLEET_PORTS[0]),
        20_000,
        100,
      );
      expect(statuses.every((s) => s === 200)).toBe(true);
      // round robin: the stack's replica (directly, or behind PgBouncer's read entry) and the new one
      expect(new Set(ports)).toEqual(new Set([PORTS.replica, FLEET_PORTS[0]]));
    }
    // the fleet's average is now 50 %: below 70, above the scale-in 30, so it stays at 2
    await new Promise((r) => setTimeout(r, 4_000));
    expect(await listening(FLEET_PORTS[1])).toBe(false);
    expect((await topology(apps[0])).map((n) => n.name)).toHaveLength(3);
  });

  it('when the load ends the added replica leaves rotation and is dropped, without a failed read', async () => {
    // the busy sessions are cancelled from a connection of their own
    const admin = await iso.settings();
    const canceller = new pg.Client({
      host: '127.0.0.1',
      port: PORTS.replica,
      user: admin.DB_USER,
      password: admin.DB_PASSWORD,
      database: 'recipes',
      ssl: testSsl(admin),
    });
    await canceller.connect();
    try {
      await canceller.query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'autoscaling-test-load'`,
      );
    } finally {
      await canceller.end();
    }
    const statuses: number[] = [];
    const gone = await until(
      async () => {
        for (const app of apps) {
          statuses.push((await read(app)).status);
        }
        return Promise.all(apps.map(topology));
      },
      (all) => all.every((nodes) => !nodes.some((n) => n.name === added)),
      120_000,
      100,
    );
    for (const nodes of gone) {
      expect(nodes.map((n) => n.name)).not.toContain(added);
    }
    expect(
      await until(
        () => listening(FLEET_PORTS[0]),
        (up) => !up,
        30_000,
      ),
    ).toBe(false);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    for (const app of apps) {
      const { ports, statuses: after } = await reads(app, 4);
      expect(after).toEqual([200, 200, 200, 200]);
      expect(new Set(ports)).toEqual(new Set([PORTS.replica]));
    }
  });
});
