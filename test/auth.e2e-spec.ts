import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stackEnv } from './support/stack.js';

describe('API keys, scopes, errors and rate limits', () => {
  let app: NestFastifyApplication;
  let limited: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'auth');
    app = await bootApp(testConfig(env, database));
    limited = await bootApp(
      testConfig(env, database, { RATE_LIMIT_LIMIT: '3', RATE_LIMIT_TTL_MS: '120000' }),
    );
  });

  afterAll(async () => {
    await app?.close();
    await limited?.close();
    await dropTestDatabase(db, database);
  });

  it('answers 401 without a key, in the API error shape, with the request id', async () => {
    const res = await request(app.getHttpServer()).get('/v1/ops/topology').expect(401);
    expect(res.body).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: expect.stringContaining('missing API key'),
      requestId: res.headers['x-request-id'],
    });
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers 401 for an unknown key', async () => {
    await request(app.getHttpServer()).get('/v1/ops/topology').set(bearer('not-a-key')).expect(401);
  });

  it('answers 403 for a key without the route scope', async () => {
    const none = await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer(KEYS.none))
      .expect(403);
    expect(none.body.message).toContain('ops:read');
    await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.opsRead))
      .send({})
      .expect(403);
  });

  it('lets health and metrics through without a key', async () => {
    await request(app.getHttpServer()).get('/health/live').expect(200);
    await request(app.getHttpServer()).get('/metrics').expect(200);
  });

  it('rejects unknown body fields and names every bad field, writing nothing', async () => {
    const res = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 42, color: 'red' })
      .expect(400);
    const message = (res.body as { message: string[] }).message;
    expect(message).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^note/),
        expect.stringMatching(/color should not exist/),
      ]),
    );
    // and field by field, by path
    const fields = (res.body as { errors: Array<{ field: string; message: string }> }).errors.map(
      (e) => e.field,
    );
    expect(fields).toEqual(expect.arrayContaining(['note', 'color']));
  });

  it('answers 400 for a malformed id', async () => {
    await request(app.getHttpServer())
      .get('/v1/ops/probes/not-a-uuid')
      .set(bearer(KEYS.opsRead))
      .expect(400);
  });

  it('never leaks the secret in an error', async () => {
    const res = await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer('super-secret-value'))
      .expect(401);
    expect(JSON.stringify(res.body)).not.toContain('super-secret-value');
  });

  it('limits requests per key with 429 and Retry-After', async () => {
    const server = limited.getHttpServer();
    for (let i = 0; i < 3; i++) {
      await request(server).get('/v1/ops/topology').set(bearer(KEYS.opsRead)).expect(200);
    }
    const res = await request(server).get('/v1/ops/topology').set(bearer(KEYS.opsRead)).expect(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    // Another key has its own budget.
    await request(server).get('/v1/ops/topology').set(bearer(KEYS.all)).expect(200);
  });

  it('serves the OpenAPI document', async () => {
    const res = await request(app.getHttpServer()).get('/docs-json').expect(200);
    expect(Object.keys((res.body as { paths: object }).paths)).toEqual(
      expect.arrayContaining(['/v1/ops/topology', '/health/ready']),
    );
  });
});
