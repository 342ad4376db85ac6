import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';

interface Effective {
  purpose: string;
  state: string;
  granted: boolean;
  policyVersion: number | null;
  currentPolicyVersion: number | null;
}

describe('consent: versioned, granular, append-only (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let user: string;
  const strong = { 'x-consistency': 'strong' };

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'consent');
    app = await bootApp(testConfig(env, database));
    const res = await request(app.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'consent@example.com', displayName: 'C' })
      .expect(201);
    user = (res.body as { id: string }).id;
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const http = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();
  const publish = (text: string) =>
    request(http())
      .post('/v1/consent-policies')
      .set(bearer(KEYS.all))
      .send({ purpose: 'marketing_email', text })
      .expect(201);
  const setConsent = (granted: boolean, policyVersion: number) =>
    request(http())
      .put(`/v1/users/${user}/consents/marketing_email`)
      .set(bearer(KEYS.all))
      .send({ granted, policyVersion, source: 'web-settings' });
  const effective = async (): Promise<Effective> => {
    const res = await request(http())
      .get(`/v1/users/${user}/consents`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect(res.body.nextCursor).toBeNull();
    return (res.body.items as Effective[]).find((c) => c.purpose === 'marketing_email')!;
  };

  it('grant v1, publish v2: the v1 grant is outdated until re-consent; withdrawal recorded; history ordered', async () => {
    const v1 = await publish('We may email you recipes. v1');
    expect(v1.body).toMatchObject({ purpose: 'marketing_email', currentVersion: 1 });
    expect(v1.headers.location).toBe('/v1/consent-policies/marketing_email');
    const located = await request(http())
      .get(v1.headers.location)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect(located.body).toMatchObject({ purpose: 'marketing_email', currentVersion: 1 });
    const all = await request(http())
      .get('/v1/consent-policies')
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect(all.body.nextCursor).toBeNull();
    expect((all.body.items as Array<{ purpose: string }>).map((p) => p.purpose)).toContain(
      'marketing_email',
    );
    expect(v1.body.versions[0].textSha256).toMatch(/^[0-9a-f]{64}$/);

    const granted = await setConsent(true, 1).expect(200);
    expect(granted.body).toMatchObject({ state: 'granted', granted: true, policyVersion: 1 });

    await publish('We may email you recipes and offers. v2');
    expect(await effective()).toMatchObject({
      state: 'outdated',
      granted: false,
      policyVersion: 1,
      currentPolicyVersion: 2,
    });

    await setConsent(true, 2).expect(200);
    expect(await effective()).toMatchObject({ state: 'granted', granted: true, policyVersion: 2 });

    const withdrawn = await setConsent(false, 2).expect(200);
    expect(withdrawn.body).toMatchObject({ state: 'withdrawn', granted: false });

    const history = await request(http())
      .get(`/v1/users/${user}/consents/history`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    type Event = { granted: boolean; policyVersion: number; actor: string };
    expect((history.body.items as Event[]).map((e) => [e.granted, e.policyVersion])).toEqual([
      [true, 1],
      [true, 2],
      [false, 2],
    ]);
    expect(history.body.items[0].actor).toBe('test-all');
    expect(history.body.nextCursor).toBeNull();
    // paged: two, then the rest through the opaque cursor
    const first = await request(http())
      .get(`/v1/users/${user}/consents/history?limit=2`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect((first.body.items as Event[]).map((e) => e.policyVersion)).toEqual([1, 2]);
    expect(typeof first.body.nextCursor).toBe('string');
    const second = await request(http())
      .get(`/v1/users/${user}/consents/history`)
      .query({ limit: 2, cursor: first.body.nextCursor as string })
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect((second.body.items as Event[]).map((e) => [e.granted, e.policyVersion])).toEqual([
      [false, 2],
    ]);
    expect(second.body.nextCursor).toBeNull();
    const bad = await request(http())
      .get(`/v1/users/${user}/consents/history?cursor=7`)
      .set(bearer(KEYS.all))
      .expect(400);
    expect(JSON.stringify(bad.body.message)).toContain('cursor');

    const audit = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT count(*)::int AS n FROM audit_logs WHERE event_type = 'consent_changes'`,
    );
    expect((audit.rows[0] as { n: number }).n).toBe(3);
  });

  it('answers 400 for an unknown purpose or policy version, 404 for an unknown user', async () => {
    const purpose = await request(http())
      .put(`/v1/users/${user}/consents/telepathy`)
      .set(bearer(KEYS.all))
      .send({ granted: true, policyVersion: 1, source: 'x' })
      .expect(400);
    expect(purpose.body.message).toContain('purpose must be one of');
    expect(purpose.body.errors).toEqual([expect.objectContaining({ field: 'purpose' })]);
    await setConsent(true, 99).expect(400);
    await request(http())
      .put(`/v1/users/${randomUUID()}/consents/marketing_email`)
      .set(bearer(KEYS.all))
      .send({ granted: true, policyVersion: 1, source: 'x' })
      .expect(404);
    await request(http())
      .get(`/v1/users/${randomUUID()}/consents/history`)
      .set(bearer(KEYS.all))
      .expect(404);
    await request(http())
      .post('/v1/consent-policies')
      .set(bearer(KEYS.all))
      .send({ purpose: 'nope', text: 'x' })
      .expect(400);
  });

  it('keeps policies and history immutable in the database', async () => {
    await expect(
      adminQuery(db, db.primaryPort, database, `UPDATE consent_policies SET text = 'changed'`),
    ).rejects.toThrow(/immutable/);
    await expect(
      adminQuery(db, db.primaryPort, database, `DELETE FROM consent_events`),
    ).rejects.toThrow(/immutable/);
  });

  it("derives the effective state from each purpose's newest event and the newest version in effect", async () => {
    const created = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'consent-long@example.com', displayName: 'L' })
      .expect(201);
    const other = (created.body as { id: string }).id;
    for (const purpose of ['personalization', 'analytics']) {
      await request(http())
        .post('/v1/consent-policies')
        .set(bearer(KEYS.all))
        .send({ purpose, text: `${purpose} v1` })
        .expect(201);
    }
    // a version published for next year is not the current one yet
    const future = new Date(Date.now() + 365 * 86_400_000).toISOString();
    await request(http())
      .post('/v1/consent-policies')
      .set(bearer(KEYS.all))
      .send({ purpose: 'analytics', text: 'analytics v2', effectiveAt: future })
      .expect(201);
    // 30 changes, interleaved: personalization ends granted, analytics withdrawn
    for (let i = 0; i < 30; i += 1) {
      const purpose = i % 2 === 0 ? 'personalization' : 'analytics';
      await request(http())
        .put(`/v1/users/${other}/consents/${purpose}`)
        .set(bearer(KEYS.all))
        .send({ granted: i % 4 < 2 ? i !== 29 : i === 28, policyVersion: 1, source: 'web' })
        .expect(200);
    }
    const res = await request(http())
      .get(`/v1/users/${other}/consents`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    const byPurpose = Object.fromEntries(
      (res.body.items as Effective[]).map((c) => [c.purpose, c]),
    ) as Record<string, Effective>;
    expect(byPurpose.personalization).toMatchObject({
      state: 'granted',
      granted: true,
      policyVersion: 1,
      currentPolicyVersion: 1,
    });
    expect(byPurpose.analytics).toMatchObject({
      state: 'withdrawn',
      granted: false,
      policyVersion: 1,
      currentPolicyVersion: 1,
    });
    expect(byPurpose.recipe_recommendations).toMatchObject({
      state: 'none',
      policyVersion: null,
      currentPolicyVersion: null,
    });
  });

  it('needs consent:write to change consent', async () => {
    await request(http())
      .put(`/v1/users/${user}/consents/analytics`)
      .set(bearer(KEYS.opsRead))
      .send({ granted: true, policyVersion: 1, source: 'x' })
      .expect(403);
  });
});
