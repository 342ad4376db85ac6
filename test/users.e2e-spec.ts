import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { axis } from './support/vectors.js';

describe('users, profiles and taste profiles', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'users');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const http = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();

  it('creates a user, refuses a second one with the same email (any case), and reads it back', async () => {
    const created = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'Ada@Example.com', displayName: 'Ada' })
      .expect(201);
    const id = (created.body as { id: string }).id;
    // 201 names the new resource, and it is there
    expect(created.headers.location).toBe(`/v1/users/${id}`);
    await request(http())
      .get(created.headers.location)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    const dup = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'ada@example.com', displayName: 'Ada again' })
      .expect(409);
    expect(dup.body.message).toContain('already exists');
    expect(JSON.stringify(dup.body)).not.toContain('ada@example.com');
    const read = await request(http())
      .get(`/v1/users/${id}`)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(read.body).toMatchObject({ id, email: 'Ada@Example.com', displayName: 'Ada' });
  });

  it('answers 404 for an unknown user, and 400 naming bad fields', async () => {
    await request(http()).get(`/v1/users/${randomUUID()}`).set(bearer(KEYS.all)).expect(404);
    await request(http())
      .get(`/v1/users/${randomUUID()}/profile`)
      .set(bearer(KEYS.all))
      .expect(404);
    await request(http())
      .put(`/v1/users/${randomUUID()}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { a: 1 } })
      .expect(404);
    const bad = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'nope', displayName: '' })
      .expect(400);
    expect(bad.body.message).toMatch(/email[\s\S]*displayName|displayName[\s\S]*email/);
  });

  it('stores and versions the profile and the taste profile', async () => {
    const created = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: `p${Date.now()}@example.com`, displayName: 'P' })
      .expect(201);
    const id = (created.body as { id: string }).id;
    const empty = await request(http())
      .get(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(empty.body).toMatchObject({ data: {}, version: 0 });

    await request(http())
      .put(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { units: 'metric' } })
      .expect(200);
    const v2 = await request(http())
      .put(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { units: 'imperial' } })
      .expect(200);
    expect(v2.body).toMatchObject({ data: { units: 'imperial' }, version: 2 });

    const taste = await request(http())
      .put(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({
        likedCuisines: ['thai'],
        likedIngredients: ['basil'],
        dislikes: ['cilantro'],
        embedding: axis(2),
      })
      .expect(200);
    expect(taste.body).toMatchObject({ likedCuisines: ['thai'], hasEmbedding: true, version: 1 });
    const read = await request(http())
      .get(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(read.body).toMatchObject({ dislikes: ['cilantro'] });

    const tooBig = await request(http())
      .put(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { blob: 'x'.repeat(20_000) } })
      .expect(400);
    expect(tooBig.body.message).toContain('16384 bytes');
    await request(http())
      .put(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({ likedCuisines: 'thai', likedIngredients: [], dislikes: [], embedding: [1] })
      .expect(400);
  });

  it('versions profiles with ETags: 304 to a matching If-None-Match, If-Match guards each PUT (412)', async () => {
    const created = await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: `etag${Date.now()}@example.com`, displayName: 'E' })
      .expect(201);
    const id = (created.body as { id: string }).id;
    for (const [path, body] of [
      ['profile', { data: { units: 'metric' } }],
      ['taste-profile', { likedCuisines: ['thai'], likedIngredients: [], dislikes: [] }],
    ] as const) {
      const url = `/v1/users/${id}/${path}`;
      const none = await request(http()).get(url).set(bearer(KEYS.all)).expect(200);
      expect({ path, etag: none.headers.etag }).toEqual({ path, etag: '"0"' });
      // * needs one to exist; none yet
      await request(http())
        .put(url)
        .set(bearer(KEYS.all))
        .set('if-match', '*')
        .send(body)
        .expect(412);
      // "0": only while none was written
      const first = await request(http())
        .put(url)
        .set(bearer(KEYS.all))
        .set('if-match', '"0"')
        .send(body)
        .expect(200);
      expect(first.headers.etag).toBe('"1"');
      const lost = await request(http())
        .put(url)
        .set(bearer(KEYS.all))
        .set('if-match', '"0"')
        .send(body)
        .expect(412);
      expect(lost.body.message).toContain('at version 1');
      await request(http())
        .get(url)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .set('if-none-match', '"1"')
        .expect(304);
      const second = await request(http())
        .put(url)
        .set(bearer(KEYS.all))
        .set('if-match', '*')
        .send(body)
        .expect(200);
      expect(second.headers.etag).toBe('"2"');
      const read = await request(http())
        .get(url)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .set('if-none-match', '"1"')
        .expect(200);
      expect({ path, version: read.body.version, etag: read.headers.etag }).toEqual({
        path,
        version: 2,
        etag: '"2"',
      });
    }
    // an unknown user stays a 404 under If-Match
    await request(http())
      .put(`/v1/users/${randomUUID()}/profile`)
      .set(bearer(KEYS.all))
      .set('if-match', '"0"')
      .send({ data: {} })
      .expect(404);
  });

  it('needs users:read / users:write', async () => {
    await request(http())
      .post('/v1/users')
      .set(bearer(KEYS.opsRead))
      .send({ email: 'a@b.co', displayName: 'x' })
      .expect(403);
    await request(http()).get(`/v1/users/${randomUUID()}`).set(bearer(KEYS.opsRead)).expect(403);
  });
});
