import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stack, stackEnv } from './support/stack.js';

// docker/stack.sh declares these two PgBouncer databases (read-write → primary, read-only → replica).
const DATABASE = 'dbu_test_pgbouncer';

interface Probe {
  id: string;
  servedBy: { role: string; port: number };
}

describe('routing through PgBouncer in transaction pooling (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    await createTestDatabase(db, 'pgbouncer', { exactName: DATABASE });
    app = await bootApp(
      testConfig(env, DATABASE, {
        DB_ROUTE_VIA_PGBOUNCER: 'true',
        PGBOUNCER_DB_RW: DATABASE,
        PGBOUNCER_DB_RO: `${DATABASE}_ro`,
      }),
    );
  });

  afterAll(async () => {
    await stack('start', 'pgbouncer');
    await app?.close();
    await dropTestDatabase(db, DATABASE);
  });

  it('writes through the read-write entry to the primary and reads through the read-only entry from the replica', async () => {
    const created = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({})
      .expect(201);
    const probe = created.body as Probe;
    expect(probe.servedBy).toMatchObject({ role: 'primary', port: db.primaryPort });

    const deadline = Date.now() + 10_000;
    let read = await request(app.getHttpServer())
      .get(`/v1/ops/probes/${probe.id}`)
      .set(bearer(KEYS.opsRead));
    while (read.status === 404 && Date.now() < deadline) {
      await sleep(50);
      read = await request(app.getHttpServer())
        .get(`/v1/ops/probes/${probe.id}`)
        .set(bearer(KEYS.opsRead));
    }
    expect(read.status).toBe(200);
    expect((read.body as Probe).servedBy).toMatchObject({ role: 'replica', port: db.replicaPort });

    const strong = await request(app.getHttpServer())
      .get(`/v1/ops/probes/${probe.id}`)
      .set(bearer(KEYS.opsRead))
      .set('x-consistency', 'strong')
      .expect(200);
    expect((strong.body as Probe).servedBy).toMatchObject({
      role: 'primary',
      port: db.primaryPort,
    });
  });

  it('is not ready while PgBouncer, its only way to the database, is down', async () => {
    await request(app.getHttpServer()).get('/health/ready').expect(200);
    await stack('stop', 'pgbouncer');
    const down = await request(app.getHttpServer()).get('/health/ready').expect(503);
    expect(down.body.details.pgbouncer.status).toBe('down');
    await stack('start', 'pgbouncer');
    await request(app.getHttpServer()).get('/health/ready').expect(200);
  });
});
