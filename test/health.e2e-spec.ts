import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { bootApp, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stack, stackEnv } from './support/stack.js';

interface Ready {
  status: string;
  details: Record<string, { status: string; state?: string; lagBytes?: number | null }>;
}

async function ready(app: NestFastifyApplication): Promise<{ code: number; body: Ready }> {
  const res = await request(app.getHttpServer()).get('/health/ready');
  return { code: res.status, body: res.body as Ready };
}

/** Polls readiness until `accept` holds (nodes take a moment to stop or start). */
async function readyUntil(
  app: NestFastifyApplication,
  accept: (r: { code: number; body: Ready }) => boolean,
): Promise<{ code: number; body: Ready }> {
  const deadline = Date.now() + 45_000;
  let last = await ready(app);
  while (!accept(last) && Date.now() < deadline) {
    await sleep(500);
    last = await ready(app);
  }
  return last;
}

describe('health (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let replicaKey: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'health');
    app = await bootApp(testConfig(env, database));
    replicaKey = `replica:${db.host}:${db.replicaPort}`;
  });

  afterAll(async () => {
    // Whatever a failed test left stopped, start it again for the next file.
    await stack('start', 'primary');
    await stack('start', 'replica');
    await stack('start', 'redis');
    await app?.close();
    await dropTestDatabase(db, database);
  });

  it('answers /health/live without touching dependencies', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200, { status: 'ok' });
  });

  it('reports primary, replica (with lag), Redis and PgBouncer up', async () => {
    const { code, body } = await ready(app);
    expect(code).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.details.primary.status).toBe('up');
    expect(body.details[replicaKey].status).toBe('up');
    expect(typeof body.details[replicaKey].lagBytes).toBe('number');
    expect(body.details.redis.status).toBe('up');
    expect(body.details.pgbouncer.status).toBe('up');
  });

  it('stays 200 with the replica reported down while it is stopped, and recovers', async () => {
    await stack('stop', 'replica');
    const down = await ready(app);
    expect(down.code).toBe(200);
    expect(down.body.status).toBe('degraded');
    expect(down.body.details[replicaKey]).toMatchObject({ status: 'degraded', state: 'down' });
    expect(down.body.details.primary.status).toBe('up');

    await stack('start', 'replica');
    const back = await readyUntil(app, (r) => r.body.details?.[replicaKey]?.status === 'up');
    expect(back.code).toBe(200);
    expect(back.body.status).toBe('ok');
  });

  it('stays 200 with Redis reported down after it is killed, and recovers', async () => {
    await stack('kill', 'redis');
    const down = await readyUntil(app, (r) => r.body.details?.redis?.status !== 'up');
    expect(down.code).toBe(200);
    expect(down.body.details.redis).toMatchObject({ status: 'degraded', state: 'down' });

    await stack('start', 'redis');
    const back = await readyUntil(app, (r) => r.body.details?.redis?.status === 'up');
    expect(back.body.details.redis.status).toBe('up');
  });

  it('answers 503 while the primary is stopped and 200 once it is back', async () => {
    await stack('stop', 'primary');
    const down = await ready(app);
    expect(down.code).toBe(503);
    expect(down.body.details.primary.status).toBe('down');

    await stack('start', 'primary');
    const back = await readyUntil(app, (r) => r.code === 200 && r.body.status === 'ok');
    expect(back.code).toBe(200);
    expect(back.body.details.primary.status).toBe('up');
  });
});
