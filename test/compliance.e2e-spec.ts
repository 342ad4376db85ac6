import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { ComplianceReportJob } from '../src/compliance/compliance-report.job.js';
import {
  ComplianceReport,
  monthOf,
  monthRange,
  previousMonth,
  renderCsv,
  reportDigest,
} from '../src/compliance/compliance-report.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';

type Report = ComplianceReport & { sha256: string };

const DAY_MS = 86_400_000;

/** Consent changes made through the API: [user index, purpose, granted]. */
const CONSENT_CHANGES: ReadonlyArray<[number, string, boolean]> = [
  [0, 'analytics', true],
  [0, 'analytics', false],
  [1, 'analytics', true],
  [0, 'marketing_email', true],
  [1, 'marketing_email', true],
  [1, 'marketing_email', false],
  [1, 'marketing_email', true],
  [0, 'personalization', false],
];

describe('compliance reports: monthly, stored, json and csv (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  const strong = { 'x-consistency': 'strong' };
  // `past` is the month seeded with requests; `current` gets the consent changes
  // made through the API now, and the rows seeded exactly at its first instant.
  let env: Record<string, string>;
  const now = new Date();
  const current = monthOf(now);
  const past = previousMonth(now);
  const pastRange = monthRange(past);
  const pastStart = new Date(pastRange.from);
  const currentStart = new Date(pastRange.to);
  const at = (ms: number): string => new Date(ms).toISOString();
  const mid = pastStart.getTime() + 10 * DAY_MS;

  const http = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();
  const sql = (text: string, params: unknown[] = []) =>
    adminQuery(db, db.primaryPort, database, text, params);
  const post = (month: unknown) =>
    request(http()).post('/v1/compliance/reports').set(bearer(KEYS.all)).send({ month });
  const get = (query: Record<string, string>) =>
    request(http()).get('/v1/compliance/reports').query(query).set(bearer(KEYS.all)).set(strong);

  const seedExport = (format: string, status: string, createdAt: string, purgedAt?: string) =>
    sql(
      `INSERT INTO gdpr_export_log (export_id, format, created_at, status, purged_at)
       VALUES (gen_random_uuid(), $1, $2::timestamptz, $3, $4::timestamptz)`,
      [format, createdAt, status, purgedAt ?? null],
    );
  const seedErasure = (status: string, verified: boolean | null, createdAt: string) =>
    sql(
      `INSERT INTO erasure_requests (subject_hash, status, verified, created_at, completed_at)
       VALUES ($1, $2, $3, $4::timestamptz, CASE WHEN $2 = 'completed' THEN $4::timestamptz END)`,
      [randomBytes(32), status, verified, createdAt],
    );

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'compliance');
    app = await bootApp(testConfig(env, database));

    // Exports: five created in `past` (both bounds), one at the first instant of
    // `current`, one the month before; purges in `past`: two.
    await seedExport('json', 'ready', pastRange.from);
    await seedExport('json', 'expired', at(mid), at(mid + DAY_MS));
    await seedExport('csv', 'failed', at(mid));
    await seedExport('csv', 'running', at(mid));
    await seedExport('json', 'ready', at(currentStart.getTime() - 1));
    await seedExport('csv', 'expired', pastRange.to, pastRange.to);
    await seedExport('json', 'expired', at(pastStart.getTime() - DAY_MS), at(mid));
    // Erasure requests: six in `past`, one at the first instant of `current`, one before.
    await seedErasure('completed', true, pastRange.from);
    await seedErasure('completed', true, at(mid));
    await seedErasure('completed', false, at(mid));
    await seedErasure('failed', null, at(mid));
    await seedErasure('queued', null, at(mid));
    await seedErasure('running', null, at(currentStart.getTime() - 1));
    await seedErasure('completed', true, pastRange.to);
    await seedErasure('queued', null, at(pastStart.getTime() - 1));

    // Consent changes, through the API (audited now, in `current`).
    for (const purpose of ['analytics', 'marketing_email', 'personalization']) {
      await request(http())
        .post('/v1/consent-policies')
        .set(bearer(KEYS.all))
        .send({ purpose, text: `policy for ${purpose}` })
        .expect(201);
    }
    const users: string[] = [];
    for (const n of [1, 2]) {
      const res = await request(http())
        .post('/v1/users')
        .set(bearer(KEYS.all))
        .send({ email: `compliance${n}@example.com`, displayName: `C${n}` })
        .expect(201);
      users.push((res.body as { id: string }).id);
    }
    for (const [user, purpose, granted] of CONSENT_CHANGES) {
      await request(http())
        .put(`/v1/users/${users[user]}/consents/${purpose}`)
        .set(bearer(KEYS.all))
        .send({ granted, policyVersion: 1, source: 'e2e' })
        .expect(200);
    }
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const noConsent = (purpose: string) => ({
    purpose,
    grants: 0,
    withdrawals: 0,
    withdrawalRate: null,
  });

  let pastReport: Report;

  it('builds a past month: every count within its UTC bounds, consent of every purpose', async () => {
    const res = await post(past).expect(201);
    pastReport = res.body as Report;
    expect(pastReport).toEqual({
      month: past,
      generatedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      exportRequests: { total: 5, json: 3, csv: 2, ready: 3, failed: 1 },
      deletionRequests: {
        total: 6,
        completed: 3,
        failed: 1,
        pending: 2,
        verified: 2,
        verificationFailed: 1,
      },
      consent: [
        noConsent('personalization'),
        noConsent('marketing_email'),
        noConsent('analytics'),
        noConsent('recipe_recommendations'),
      ],
      // The first build walks the whole chain and leaves a checkpoint for the next one.
      auditLogIntegrity: {
        valid: true,
        mode: 'incremental',
        verifiedFrom: 'genesis',
        checkpointSeq: 0,
        checkpointAt: null,
        fromSeq: 1,
        toSeq: expect.any(Number),
        rowsChecked: expect.any(Number),
        firstBroken: null,
        eventsThisMonth: 0,
      },
      exportsPurged: 2,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const integrity = pastReport.auditLogIntegrity;
    expect(integrity.rowsChecked).toBeGreaterThanOrEqual(CONSENT_CHANGES.length);
    expect(integrity.rowsChecked).toBe(integrity.toSeq);
    const { sha256, ...report } = pastReport;
    expect(reportDigest(report)).toBe(sha256);
  });

  it('builds the current month: consent withdrawal rates from the audit log', async () => {
    const res = await post(current).expect(201);
    const report = res.body as Report;
    expect(report).toMatchObject({
      month: current,
      exportRequests: { total: 1, json: 0, csv: 1, ready: 1, failed: 0 },
      deletionRequests: {
        total: 1,
        completed: 1,
        failed: 0,
        pending: 0,
        verified: 1,
        verificationFailed: 0,
      },
      consent: [
        { purpose: 'personalization', grants: 0, withdrawals: 1, withdrawalRate: 1 },
        { purpose: 'marketing_email', grants: 3, withdrawals: 1, withdrawalRate: 0.25 },
        { purpose: 'analytics', grants: 2, withdrawals: 1, withdrawalRate: 0.3333 },
        noConsent('recipe_recommendations'),
      ],
      // Continues where the previous build's verification stopped.
      auditLogIntegrity: {
        valid: true,
        firstBroken: null,
        mode: 'incremental',
        verifiedFrom: 'verified_checkpoint',
        checkpointSeq: pastReport.auditLogIntegrity.toSeq,
        checkpointAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
        fromSeq: pastReport.auditLogIntegrity.toSeq + 1,
      },
      exportsPurged: 1,
    });
    const { eventsThisMonth, rowsChecked, toSeq, fromSeq } = report.auditLogIntegrity;
    expect(eventsThisMonth).toBeGreaterThanOrEqual(CONSENT_CHANGES.length);
    expect(rowsChecked).toBe(toSeq - fromSeq + 1);
  });

  it('serves the stored report as json and as csv', async () => {
    const json = await get({ month: past }).expect(200);
    expect(json.body).toEqual(pastReport);

    const csv = await get({ month: past, format: 'csv' }).expect(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toBe(
      `attachment; filename="compliance-report-${past}.csv"`,
    );
    const { sha256, ...report } = pastReport;
    expect(csv.text).toBe(renderCsv(report, sha256));
    const lines = csv.text.split('\r\n');
    expect(lines[0]).toBe('section,metric,key,value');
    expect(lines).toEqual(
      expect.arrayContaining([
        `meta,month,,${past}`,
        `meta,report_sha256,,${sha256}`,
        'data_export_requests,total,,5',
        'data_export_requests,ready,,3',
        'data_deletion_requests,verification_failed,,1',
        'consent,grants,analytics,0',
        'consent,withdrawal_rate,analytics,',
        'audit_log_integrity,valid,,true',
        'audit_log_integrity,mode,,incremental',
        'audit_log_integrity,verified_from,,genesis',
        'audit_log_integrity,first_broken_seq,,',
        'audit_log_integrity,events_this_month,,0',
        'data_exports,purged,,2',
      ]),
    );
  });

  it('replaces a month when it is built again; lists the stored months newest first', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const built = await post(past).expect(201);
    expect(built.headers.location).toBe(`/v1/compliance/reports?month=${past}`);
    const again = built.body as Report;
    // the Location answers with the report just built
    const located = await request(http())
      .get(built.headers.location)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect(located.body.sha256).toBe(again.sha256);
    expect(again.generatedAt > pastReport.generatedAt).toBe(true);
    // Same counts; rowsChecked may have grown (the audit log is live).
    for (const section of [
      'exportRequests',
      'deletionRequests',
      'consent',
      'exportsPurged',
    ] as const) {
      expect(again[section]).toEqual(pastReport[section]);
    }
    expect(again.auditLogIntegrity.eventsThisMonth).toBe(0);
    const list = await get({}).expect(200);
    expect(list.body).toEqual({
      items: [
        { month: current, generatedAt: expect.any(String), sha256: expect.any(String) },
        { month: past, generatedAt: again.generatedAt, sha256: again.sha256 },
      ],
      nextCursor: null,
    });
    const rows = await sql(`SELECT count(*)::int AS n FROM compliance_reports`);
    expect((rows.rows[0] as { n: number }).n).toBe(2);
    pastReport = again;
  });

  it.each([
    ['13th month', { month: '2026-13' }, ['month must be a calendar month as YYYY-MM']],
    ['no month', {}, ['month must be a calendar month as YYYY-MM']],
    ['a number', { month: 202601 }, ['month must be a string']],
    ['an unknown field', { month: past, extra: 1 }, ['property extra should not exist']],
  ])('POST answers 400 naming the field: %s', async (_case, body, messages) => {
    const res = await request(http())
      .post('/v1/compliance/reports')
      .set(bearer(KEYS.all))
      .send(body)
      .expect(400);
    const text = res.body.message as string;
    for (const message of messages) {
      expect(text).toContain(message);
    }
  });

  it('answers 400 for a future month, and names every bad query field', async () => {
    const next = monthOf(new Date(currentStart.getTime() + 40 * DAY_MS));
    const future = await post(next).expect(400);
    expect(future.body.message).toBe(`month must not be in the future (latest: ${current})`);
    expect(future.body.errors).toEqual([
      { field: 'month', message: `month must not be in the future (latest: ${current})` },
    ]);
    await get({ month: next }).expect(400);
    const both = await get({ month: '2026-1', format: 'xml' }).expect(400);
    const messages = both.body.message as string;
    expect((both.body.errors as Array<{ field: string }>).map((e) => e.field).sort()).toEqual([
      'format',
      'month',
    ]);
    expect(messages).toContain('month must be a calendar month as YYYY-MM');
    expect(messages).toMatch(/format must be one of/);
    const formatOnly = await get({ format: 'csv' }).expect(400);
    expect(formatOnly.body).toMatchObject({
      message: 'format applies to one report: give month too',
      errors: [{ field: 'format', message: 'format applies to one report: give month too' }],
    });
  });

  it('answers 404 for a month never built', async () => {
    const res = await get({ month: '2001-01' }).expect(404);
    expect(res.body).toMatchObject({ code: 'NOT_FOUND' });
    await get({ month: '2001-01', format: 'csv' }).expect(404);
  });

  it('needs an API key with audit:read', async () => {
    await request(http()).get('/v1/compliance/reports').query({ month: past }).expect(401);
    await request(http()).post('/v1/compliance/reports').send({ month: past }).expect(401);
    await request(http())
      .get('/v1/compliance/reports')
      .query({ month: past })
      .set(bearer(KEYS.opsRead))
      .expect(403);
    await request(http())
      .post('/v1/compliance/reports')
      .set(bearer(KEYS.none))
      .send({ month: past })
      .expect(403);
  });

  it("the job builds the previous month's report on the leader and records a summary", async () => {
    const runAt = new Date();
    const outcome = await app.get(ComplianceReportJob).run(runAt);
    expect(outcome).toMatchObject({
      ran: true,
      status: 'succeeded',
      detail: {
        month: past,
        exportRequests: 5,
        deletionRequests: 6,
        consentChanges: 0,
        auditEvents: 0,
        auditValid: true,
      },
    });
    const stored = (await get({ month: past }).expect(200)).body as Report;
    expect(stored.generatedAt).toBe(runAt.toISOString());
    expect(stored.sha256).toBe((outcome as { detail: { sha256: string } }).detail.sha256);
    expect(stored.exportRequests).toEqual(pastReport.exportRequests);
  });

  it('verifies incrementally: a build walks only the rows appended since the last one, and finds a row tampered with since then', async () => {
    const before = (await post(current).expect(201)).body as Report;
    const res = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'compliance3@example.com', displayName: 'C3' })
      .expect(201);
    const user = (res.body as { id: string }).id;
    for (const granted of [true, false, true]) {
      await request(http())
        .put(`/v1/users/${user}/consents/analytics`)
        .set(bearer(KEYS.all))
        .send({ granted, policyVersion: 1, source: 'e2e' })
        .expect(200);
    }
    const after = ((await post(current).expect(201)).body as Report).auditLogIntegrity;
    const { toSeq } = before.auditLogIntegrity;
    expect(after).toMatchObject({
      valid: true,
      mode: 'incremental',
      verifiedFrom: 'verified_checkpoint',
      checkpointSeq: toSeq,
      fromSeq: toSeq + 1,
    });
    expect(after.toSeq).toBeGreaterThanOrEqual(toSeq + 4);
    expect(after.rowsChecked).toBe(after.toSeq - toSeq);
    expect(after.rowsChecked).toBeLessThan(after.toSeq);

    // More rows after that checkpoint, one of them changed behind the triggers (only a
    // superuser can): the next build finds it at its seq, and so does the one after
    // (a failed verification leaves no checkpoint to skip past it).
    await request(http())
      .put(`/v1/users/${user}/consents/analytics`)
      .set(bearer(KEYS.all))
      .send({ granted: false, policyVersion: 1, source: 'e2e' })
      .expect(200);
    const tampered = after.toSeq + 1;
    await superQuery(
      env,
      db.primaryPort,
      database,
      `BEGIN;
       ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_no_change;
       UPDATE audit_logs SET actor = 'mallory' WHERE seq = ${tampered};
       ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_no_change;
       COMMIT;`,
    );
    for (let build = 0; build < 2; build++) {
      const next = ((await post(current).expect(201)).body as Report).auditLogIntegrity;
      expect(next).toMatchObject({
        valid: false,
        verifiedFrom: 'verified_checkpoint',
        checkpointSeq: after.toSeq,
        firstBroken: { seq: tampered, reason: 'hash does not match the row contents' },
      });
    }
  });
});
