import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stack, stackEnv } from './support/stack.js';

interface Probe {
  id: string;
  servedBy: { role: string; port: number; inRecovery: boolean };
}

describe('read/write routing on the one DataSource (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'routing');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await stack('start', 'replica');
    await app?.close();
    await dropTestDatabase(db, database);
  });

  async function createProbe(): Promise<Probe> {
    const res = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 'routing' })
      .expect(201);
    // 201 names the probe it wrote
    expect(res.headers.location).toBe(`/v1/ops/probes/${(res.body as Probe).id}`);
    return res.body as Probe;
  }

  /** The replica may be a few ms behind the write; retry the read briefly. */
  async function readFromReplica(id: string): Promise<Probe> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await request(app.getHttpServer())
        .get(`/v1/ops/probes/${id}`)
        .set(bearer(KEYS.opsRead));
      if (res.status === 200 || Date.now() > deadline) {
        expect(res.status).toBe(200);
        return res.body as Probe;
      }
      await sleep(50);
    }
  }

  it('writes on the primary and reads the row back from the replica', async () => {
    const probe = await createProbe();
    expect(probe.servedBy).toEqual({ role: 'primary', port: db.primaryPort, inRecovery: false });
    const read = await readFromReplica(probe.id);
    expect(read.id).toBe(probe.id);
    expect(read.servedBy).toEqual({ role: 'replica', port: db.replicaPort, inRecovery: true });
  });

  it('reads from the primary when the caller asks for x-consistency: strong', async () => {
    const probe = await createProbe();
    const res = await request(app.getHttpServer())
      .get(`/v1/ops/probes/${probe.id}`)
      .set(bearer(KEYS.opsRead))
      .set('x-consistency', 'strong')
      .expect(200);
    expect((res.body as Probe).servedBy).toEqual({
      role: 'primary',
      port: db.primaryPort,
      inRecovery: false,
    });
  });

  it('answers 400 naming the allowed values for an unknown x-consistency', async () => {
    const probe = await createProbe();
    const res = await request(app.getHttpServer())
      .get(`/v1/ops/probes/${probe.id}`)
      .set(bearer(KEYS.opsRead))
      .set('x-consistency', 'linearizable')
      .expect(400);
    expect(res.body).toMatchObject({
      statusCode: 400,
      message: 'x-consistency must be one of: strong, eventual',
      errors: [
        { field: 'x-consistency', message: 'x-consistency must be one of: strong, eventual' },
      ],
    });
  });

  it('with DB_READ_DEFAULT=primary reads from the writer, and from a replica when asked for eventual', async () => {
    const other = await bootApp(
      testConfig(await stackEnv(), database, { DB_READ_DEFAULT: 'primary' }),
    );
    try {
      const created = await request(other.getHttpServer())
        .post('/v1/ops/probes')
        .set(bearer(KEYS.all))
        .send({ note: 'read default' })
        .expect(201);
      const id = (created.body as Probe).id;
      for (let i = 0; i < 3; i++) {
        const res = await request(other.getHttpServer())
          .get(`/v1/ops/probes/${id}`)
          .set(bearer(KEYS.opsRead))
          .expect(200);
        expect((res.body as Probe).servedBy.role).toBe('primary');
      }
      const deadline = Date.now() + 10_000;
      let eventual: Probe | undefined;
      while (Date.now() < deadline) {
        const res = await request(other.getHttpServer())
          .get(`/v1/ops/probes/${id}`)
          .set(bearer(KEYS.opsRead))
          .set('x-consistency', 'eventual');
        if (res.status === 200) {
          eventual = res.body as Probe;
          break;
        }
        await sleep(50);
      }
      expect(eventual?.servedBy).toEqual({
        role: 'replica',
        port: db.replicaPort,
        inRecovery: true,
      });
    } finally {
      await other.close();
    }
  });

  it('answers 404 in the API error shape for a probe that does not exist', async () => {
    const res = await request(app.getHttpServer())
      .get('/v1/ops/probes/7d1b0a4e-3f7e-4c89-9a43-9f1c1c0f2b11')
      .set(bearer(KEYS.opsRead))
      .set('x-request-id', 'req-404-check')
      .expect(404);
    expect(res.body).toMatchObject({
      statusCode: 404,
      error: 'Not Found',
      requestId: 'req-404-check',
    });
    expect(res.headers['x-request-id']).toBe('req-404-check');
  });

  it('serves reads from the primary while the replica is down', async () => {
    const probe = await createProbe();
    await stack('stop', 'replica');
    const res = await request(app.getHttpServer())
      .get(`/v1/ops/probes/${probe.id}`)
      .set(bearer(KEYS.opsRead))
      .expect(200);
    expect((res.body as Probe).servedBy.port).toBe(db.primaryPort);
    await stack('start', 'replica');
  });

  it('shows the topology with roles and timelines', async () => {
    const res = await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer(KEYS.opsRead))
      .expect(200);
    const nodes = (res.body as { nodes: Array<{ name: string; role: string; timeline: number }> })
      .nodes;
    expect(nodes.map((n) => n.role).sort()).toEqual(['primary', 'replica']);
    expect(nodes.every((n) => n.timeline >= 1)).toBe(true);
  });
});
