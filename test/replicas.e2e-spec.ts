import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { IsolatedStack, REPO_ROOT } from './support/stack.js';
import { until } from './support/wait.js';

const PORTS = { primary: 27462, replica: 27463, pgbouncer: 27562, redis: 27399 };
const EXTRA = 27464;

interface TopologyNode {
  name: string;
  healthy: boolean;
  readExclusion: string | null;
}

/** Two replicas (a throwaway stack plus `docker/stack.sh add-replica`): round robin, one killed. */
describe('round robin over two replicas (isolated real stack)', () => {
  const iso = new IsolatedStack(join(REPO_ROOT, '.stack', 'replicas'), PORTS);
  let app: NestFastifyApplication;
  let probeId: string;
  const replicaA = `127.0.0.1:${PORTS.replica}`;
  const replicaB = `127.0.0.1:${EXTRA}`;

  beforeAll(async () => {
    await rm(iso.dir, { recursive: true, force: true });
    await iso.run('up');
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
    await iso.run('down').catch(() => '');
    await rm(iso.dir, { recursive: true, force: true });
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
