import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { chainHash } from '../src/audit/audit-hash.js';
import { AuditMaintenanceJob } from '../src/audit/audit-maintenance.job.js';
import { monthPartition } from '../src/audit/audit-partitions.js';
import { AuditService, VerifyReport } from '../src/audit/audit.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  ownerQuery,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { recipeBody } from './support/vectors.js';

/** The monthly partition `monthsFromNow` months from the current UTC month. */
function partitionOf(monthsFromNow: number): string {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + monthsFromNow, 1));
  return monthPartition(d.getUTCFullYear(), d.getUTCMonth() + 1).name;
}

/** A row changed behind the triggers, as only a superuser can (the attack verification exists for). */
function tamper(env: Record<string, string>, port: number, database: string, update: string) {
  return superQuery(
    env,
    port,
    database,
    `BEGIN;
     ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change;
     ${update};
     ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_change;
     COMMIT;`,
  );
}

describe('audit log: append-only, hash-chained (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  // A partition six years old: inside the retention, whatever asks to drop it.
  const young = partitionOf(-6 * 12);
  const current = partitionOf(0);

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'audit');
    app = await bootApp(testConfig(env, database));
    const youngMonth = new Date();
    youngMonth.setUTCFullYear(youngMonth.getUTCFullYear() - 6);
    await ownerQuery(db, db.primaryPort, database, `SELECT audit_create_partition($1::date)`, [
      youngMonth.toISOString().slice(0, 10),
    ]);
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  /** As the service's own role (DB_USER), by raw SQL. */
  const asService = (sql: string, params: unknown[] = []) =>
    adminQuery(db, db.primaryPort, database, sql, params);

  const verify = async (mode?: 'full' | 'incremental'): Promise<VerifyReport> =>
    (
      await request(app.getHttpServer())
        .get('/v1/audit-logs/verify')
        .query(mode ? { mode } : {})
        .set(bearer(KEYS.all))
        .expect(200)
    ).body as VerifyReport;

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
    // times are ISO-8601 strings, as everywhere in the API
    expect(entry?.occurredAt).toEqual(expect.stringMatching(/^\d{4}-\d{2}-\d{2}T.*Z$/));
    expect(entry).not.toHaveProperty('occurredAtMs');
    await request(app.getHttpServer()).get('/v1/audit-logs').set(bearer(KEYS.opsRead)).expect(403);
    // pages of one, linked by an opaque cursor; a bare sequence number is not one
    await request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody())
      .expect(201);
    const first = await request(app.getHttpServer())
      .get('/v1/audit-logs')
      .query({ limit: 1 })
      .set(bearer(KEYS.all))
      .expect(200);
    expect(first.body.items).toHaveLength(1);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect(first.body.nextCursor).not.toMatch(/^\d+$/);
    const second = await request(app.getHttpServer())
      .get('/v1/audit-logs')
      .query({ limit: 1, cursor: first.body.nextCursor as string })
      .set(bearer(KEYS.all))
      .expect(200);
    expect(Number(second.body.items[0].seq)).toBeGreaterThan(Number(first.body.items[0].seq));
    await request(app.getHttpServer())
      .get('/v1/audit-logs')
      .query({ cursor: String(first.body.items[0].seq) })
      .set(bearer(KEYS.all))
      .expect(400);
  });

  describe("the service's own role cannot change or destroy it", () => {
    it.each([
      ['UPDATE', `UPDATE audit_logs SET action = 'x'`],
      ['DELETE', `DELETE FROM audit_logs`],
      ['TRUNCATE', `TRUNCATE audit_logs`],
      ['DISABLE TRIGGER', `ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change`],
      ['DISABLE TRIGGER ALL', `ALTER TABLE audit_logs DISABLE TRIGGER ALL`],
      ['DETACH PARTITION', `ALTER TABLE audit_logs DETACH PARTITION ${current}`],
      ['DROP of a partition', `DROP TABLE ${current}`],
      ['TRUNCATE of a partition (past the parent trigger)', `TRUNCATE ${current}`],
      ['DELETE from a partition', `DELETE FROM ${current}`],
      [
        'a partition made by the service',
        `CREATE TABLE audit_logs_y2099m01 PARTITION OF audit_logs FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')`,
      ],
      ['ALTER TABLE ... OWNER TO', `ALTER TABLE audit_logs OWNER TO CURRENT_USER`],
      ['moving the chain head', `UPDATE audit_chain_head SET seq = 0`],
      ['DROP of a partition younger than 7 years', `DROP TABLE ${young}`],
      [
        'the retention function on a partition younger than 7 years',
        `SELECT audit_drop_partition('${young}', 7)`,
      ],
      [
        'the retention function with a retention under 7 years',
        `SELECT audit_drop_partition('${young}', 1)`,
      ],
      ['a back-dated partition', `SELECT audit_create_partition('2018-01-01')`],
      [
        'a row that does not extend the chain',
        `INSERT INTO audit_logs (seq, occurred_at, event_type, resource, action, prev_hash, hash)
         VALUES (1, now(), 'data_modifications', 'x', 'x', repeat('0', 64), repeat('1', 64))`,
      ],
      ['UPDATE of audit_digests', `UPDATE audit_digests SET hash = 'x'`],
      ['DELETE from audit_digests', `DELETE FROM audit_digests`],
      ['TRUNCATE of audit_digests', `TRUNCATE audit_digests`],
      ['DISABLE TRIGGER on audit_digests', `ALTER TABLE audit_digests DISABLE TRIGGER ALL`],
      ['DROP of audit_digests', `DROP TABLE audit_digests`],
      [
        'a forged retention checkpoint',
        `INSERT INTO audit_retention_checkpoints
         (partition, range_from, range_to, rows_dropped, sealed_seq, sealed_hash, retention_years)
         VALUES ('x', now(), now(), 0, 1000, 'x', 7)`,
      ],
    ])('refuses %s', async (_case, sql) => {
      await expect(asService(sql)).rejects.toThrow(
        /permission denied|must be owner|younger than the 7 year retention|at least 7 years|does not extend the chain/,
      );
    });

    it('GRANT gives the service nothing back', async () => {
      for (const table of ['audit_logs', 'audit_digests', 'audit_chain_head', current]) {
        // A role without grant options only gets a warning (or an error with no right at all).
        await asService(`GRANT ALL ON ${table} TO CURRENT_USER`).catch((err: Error) =>
          expect(err.message).toMatch(/permission denied/),
        );
        await asService(`GRANT ALL ON ${table} TO PUBLIC`).catch((err: Error) =>
          expect(err.message).toMatch(/permission denied/),
        );
      }
      const rights = await asService(
        `SELECT t AS "table", p AS privilege
           FROM unnest(ARRAY['audit_logs', 'audit_digests', 'audit_chain_head', $1]) t,
                unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER']) p
          WHERE has_table_privilege(current_user, t, p)`,
        [current],
      );
      expect(rights.rows).toEqual([]);
      const owners = await asService(
        `SELECT count(*)::int AS n FROM pg_class
          WHERE relname LIKE 'audit%' AND pg_has_role(current_user, relowner, 'USAGE')`,
      );
      expect((owners.rows[0] as { n: number }).n).toBe(0);
    });

    it('leaves every row and partition where it was', async () => {
      const parts = await asService(
        `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'audit_logs'::regclass`,
      );
      const names = (parts.rows as Array<{ relname: string }>).map((r) => r.relname);
      expect(names).toEqual(expect.arrayContaining([current, young, 'audit_logs_default']));
      expect(await verify()).toMatchObject({ valid: true, rowsChecked: expect.any(Number) });
      expect((await verify()).rowsChecked).toBeGreaterThanOrEqual(1);
      await request(app.getHttpServer())
        .get('/v1/audit-logs/verify')
        .query({ mode: 'sideways' })
        .set(bearer(KEYS.all))
        .expect(400);
    });
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
    expect(report).toMatchObject({ valid: true, firstBroken: null, mode: 'full' });
    expect(report.rowsChecked).toBeGreaterThanOrEqual(51);
  });

  it('maintenance: keeps partitions ahead, drops only those past retention, publishes a digest', async () => {
    await ownerQuery(db, db.primaryPort, database, `SELECT audit_create_partition('2018-01-01')`);
    const result = await app.get(AuditMaintenanceJob).maintain();
    expect(result.verification.valid).toBe(true);
    expect(result.dropped).toEqual([
      expect.objectContaining({ partition: 'audit_logs_y2018m01', rowsDropped: 0, sealedSeq: 0 }),
    ]);
    const parts = await asService(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_logs'::regclass`,
    );
    const names = (parts.rows as Array<{ relname: string }>).map((r) => r.relname);
    expect(names).toContain(partitionOf(2));
    expect(names).toContain(young);
    expect(names).not.toContain('audit_logs_y2018m01');
    const digests = await asService('SELECT count(*)::int AS n FROM audit_digests');
    expect((digests.rows[0] as { n: number }).n).toBe(1);
    expect((await verify()).valid).toBe(true);
  });

  it('detects a row tampered with by a superuser (trigger disabled) at the right row', async () => {
    const target = await asService(`SELECT seq FROM audit_logs ORDER BY seq OFFSET 10 LIMIT 1`);
    const seq = Number((target.rows[0] as { seq: string }).seq);
    await tamper(
      env,
      db.primaryPort,
      database,
      `UPDATE audit_logs SET actor = 'mallory' WHERE seq = ${seq}`,
    );
    const report = await verify();
    expect(report.valid).toBe(false);
    expect(report.firstBroken).toEqual({ seq, reason: 'hash does not match the row contents' });
  });
});

describe('audit log: retention drops sealed history and the rest still verifies (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  const OLD_ROWS = { audit_logs_y2018m01: 4, audit_logs_y2018m02: 3 };

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'audit_retention');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const asService = (sql: string, params: unknown[] = []) =>
    adminQuery(db, db.primaryPort, database, sql, params);
  const verify = async (mode?: 'full' | 'incremental'): Promise<VerifyReport> =>
    (
      await request(app.getHttpServer())
        .get('/v1/audit-logs/verify')
        .query(mode ? { mode } : {})
        .set(bearer(KEYS.all))
        .expect(200)
    ).body as VerifyReport;
  const hashOf = async (seq: number): Promise<string> =>
    (
      (await asService(`SELECT hash FROM audit_logs WHERE seq = $1`, [seq])).rows[0] as {
        hash: string;
      }
    ).hash;

  it('starts with a chain whose oldest rows are more than 7 years old', async () => {
    for (const month of ['2018-01-01', '2018-02-01']) {
      await ownerQuery(db, db.primaryPort, database, `SELECT audit_create_partition($1::date)`, [
        month,
      ]);
    }
    // Appended by the service itself, back-dated: the first rows of this chain.
    const audit = app.get(AuditService);
    await app.get(DataSource).transaction(async (m) => {
      for (const [month, rows] of [
        [0, OLD_ROWS.audit_logs_y2018m01],
        [1, OLD_ROWS.audit_logs_y2018m02],
      ]) {
        for (let i = 0; i < rows; i++) {
          await audit.append(m, {
            eventType: 'data_modifications',
            resource: `legacy:${month}-${i}`,
            action: 'create',
            details: { fields: ['title'] },
            occurredAtMs: Date.UTC(2018, month, 10 + i),
          });
        }
      }
    });
    for (let i = 0; i < 5; i++) {
      await request(app.getHttpServer())
        .post('/v1/recipes')
        .set(bearer(KEYS.all))
        .send(recipeBody({ title: `Retained ${i}` }))
        .expect(201);
    }
    const counts = await asService(
      `SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM audit_logs GROUP BY 1`,
    );
    expect(counts.rows).toEqual(
      expect.arrayContaining([
        { part: 'audit_logs_y2018m01', n: 4 },
        { part: 'audit_logs_y2018m02', n: 3 },
      ]),
    );
    expect(await verify()).toMatchObject({ valid: true, rowsChecked: 12 });
  });

  it('refuses to drop old rows out of chain order (a newer month before an older one)', async () => {
    await expect(
      asService(`SELECT audit_drop_partition('audit_logs_y2018m02', 7)`),
    ).rejects.toThrow(/is not the linked start of the chain/);
  });

  it('drops both partitions, seals the last dropped row, and the retained chain verifies from the seal', async () => {
    const sealedHash = await hashOf(7);
    const result = await app.get(AuditMaintenanceJob).maintain();
    expect(result.verification).toMatchObject({ valid: true, rowsChecked: 12 });
    expect(result.dropped).toEqual([
      expect.objectContaining({ partition: 'audit_logs_y2018m01', rowsDropped: 4, sealedSeq: 4 }),
      expect.objectContaining({
        partition: 'audit_logs_y2018m02',
        rowsDropped: 3,
        sealedSeq: 7,
        sealedHash,
      }),
    ]);
    const left = await asService(
      `SELECT min(seq)::int AS first, count(*)::int AS n FROM audit_logs`,
    );
    expect(left.rows[0]).toEqual({ first: 8, n: 5 });

    const full = await verify();
    expect(full).toMatchObject({
      valid: true,
      mode: 'full',
      start: { from: 'retention_checkpoint', seq: 7, hash: sealedHash },
      fromSeq: 8,
      rowsChecked: 5,
      firstBroken: null,
    });
    // The job verified up to the head before dropping: an incremental walk has nothing left.
    expect(await verify('incremental')).toMatchObject({
      valid: true,
      mode: 'incremental',
      start: { from: 'verified_checkpoint', seq: 12 },
      fromSeq: 13,
      rowsChecked: 0,
    });
  });

  it('detects a tampered retained row at that row', async () => {
    await tamper(
      env,
      db.primaryPort,
      database,
      `UPDATE audit_logs SET action = 'delete' WHERE seq = 10`,
    );
    expect((await verify()).firstBroken).toEqual({
      seq: 10,
      reason: 'hash does not match the row contents',
    });
  });

  it('detects a first retained row that no longer continues the sealed history', async () => {
    // Row 8 rewritten with a consistent hash of its own: only the seal can tell.
    const raw = await asService(
      `SELECT seq::int AS seq, (extract(epoch FROM occurred_at) * 1000)::int8::text AS ms, event_type, actor,
              subject_id, resource, action, request_id, details
         FROM audit_logs WHERE seq = 8`,
    );
    const r = raw.rows[0] as Record<string, string | null>;
    const prevHash = 'f'.repeat(64);
    const hash = chainHash({
      seq: 8,
      occurredAtMs: Number(r.ms),
      eventType: r.event_type as string,
      actor: r.actor,
      subjectId: r.subject_id,
      resource: r.resource as string,
      action: r.action as string,
      requestId: r.request_id,
      details: r.details,
      prevHash,
    });
    await tamper(
      env,
      db.primaryPort,
      database,
      `UPDATE audit_logs SET prev_hash = '${prevHash}', hash = '${hash}' WHERE seq = 8`,
    );
    expect((await verify()).firstBroken).toEqual({
      seq: 8,
      reason: 'prev_hash does not continue the retention checkpoint at seq 7',
    });
  });
});
