import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import pg from 'pg';
import request from 'supertest';
import { AuditMaintenanceJob } from '../src/audit/audit-maintenance.job.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { recipeBody } from './support/vectors.js';

interface Verify {
  valid: boolean;
  rowsChecked: number;
  firstBroken: { seq: number; reason: string } | null;
}

describe('audit log: append-only, hash-chained (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'audit');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const verify = async (): Promise<Verify> =>
    (
      await request(app.getHttpServer())
        .get('/v1/audit-logs/verify')
        .set(bearer(KEYS.all))
        .expect(200)
    ).body as Verify;

  it('records each data change in the same transaction, with actor and request id', async () => {
    const created = await request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .set('x-request-id', 'audit-req-1')
      .send(recipeBody())
      .expect(201);
    const res = await request(app.getHttpServer())
      .get('/v1/audit-logs')
      .query({ eventType: 'data_modifications' })
      .set(bearer(KEYS.all))
      .expect(200);
    const entry = (res.body.items as Array<Record<string, unknown>>).find(
      (e) => e.resource === `recipe:${created.body.id}`,
    );
    expect(entry).toMatchObject({ action: 'create', actor: 'test-all', requestId: 'audit-req-1' });
    await request(app.getHttpServer()).get('/v1/audit-logs').set(bearer(KEYS.opsRead)).expect(403);
  });

  it.each([
    ['UPDATE', `UPDATE audit_logs SET action = 'x'`],
    ['DELETE', `DELETE FROM audit_logs`],
    ['TRUNCATE', `TRUNCATE audit_logs`],
  ])('refuses %s even as the application role, via raw SQL', async (_op, sql) => {
    await expect(adminQuery(db, db.primaryPort, database, sql)).rejects.toThrow(
      /append-only|permission denied/,
    );
  });

  it('keeps one valid chain under 50 concurrent writers', async () => {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        request(app.getHttpServer())
          .post('/v1/recipes')
          .set(bearer(KEYS.all))
          .send(recipeBody({ title: `Concurrent ${i}` }))
          .expect(201),
      ),
    );
    const report = await verify();
    expect(report).toMatchObject({ valid: true, firstBroken: null });
    expect(report.rowsChecked).toBeGreaterThanOrEqual(51);
  });

  it('maintenance: keeps partitions ahead, drops only those past retention, publishes a digest', async () => {
    await adminQuery(
      db,
      db.primaryPort,
      database,
      `CREATE TABLE audit_logs_y2018m01 PARTITION OF audit_logs FOR VALUES FROM ('2018-01-01') TO ('2018-02-01')`,
    );
    const result = await app.get(AuditMaintenanceJob).maintain(new Date());
    expect(result.dropped).toEqual(['audit_logs_y2018m01']);
    expect(result.valid).toBe(true);
    const parts = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_logs'::regclass`,
    );
    const names = (parts.rows as Array<{ relname: string }>).map((r) => r.relname);
    const now = new Date();
    const ahead = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 2, 1));
    expect(names).toContain(
      `audit_logs_y${ahead.getUTCFullYear()}m${String(ahead.getUTCMonth() + 1).padStart(2, '0')}`,
    );
    expect(names).not.toContain('audit_logs_y2018m01');
    const digests = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT count(*)::int AS n FROM audit_digests',
    );
    expect((digests.rows[0] as { n: number }).n).toBe(1);
    expect((await verify()).valid).toBe(true);
  });

  it('detects a row tampered with by a superuser (trigger disabled) at the right row', async () => {
    const target = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT seq FROM audit_logs ORDER BY seq OFFSET 10 LIMIT 1`,
    );
    const seq = Number((target.rows[0] as { seq: string }).seq);
    const su = new pg.Client({
      host: `${env.STACK_DIR}/run`,
      port: db.primaryPort,
      user: 'postgres',
      database,
    });
    await su.connect();
    try {
      await su.query('BEGIN');
      await su.query('ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change');
      await su.query(`UPDATE audit_logs SET actor = 'mallory' WHERE seq = $1`, [seq]);
      await su.query('ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_change');
      await su.query('COMMIT');
    } finally {
      await su.end();
    }
    const report = await verify();
    expect(report.valid).toBe(false);
    expect(report.firstBroken).toEqual({ seq, reason: 'hash does not match the row contents' });
  });
});
