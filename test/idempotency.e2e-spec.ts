import type { NestFastifyApplication } from '@nestjs/platform-fastify';
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
import { recipeBody } from './support/vectors.js';

describe('Idempotency-Key on mutating routes (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'idempotency');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const count = async (title: string): Promise<number> =>
    Number(
      (
        (
          await adminQuery(
            db,
            db.primaryPort,
            database,
            'SELECT count(*) AS n FROM recipes WHERE title = $1',
            [title],
          )
        ).rows[0] as { n: string }
      ).n,
    );
  const create = (key: string, title: string) =>
    request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .set('idempotency-key', key)
      .send(recipeBody({ title }));

  it('a retried request with the same key writes once and gets the first result back', async () => {
    const first = await create('create-soup-1', 'Idempotent soup').expect(201);
    const retry = await create('create-soup-1', 'Idempotent soup').expect(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.body).toEqual(first.body);
    // the replay names and versions what the first request wrote, as its answer did
    expect(first.headers.location).toBe(`/v1/recipes/${(first.body as { id: string }).id}`);
    expect(first.headers['x-write-lsn']).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    for (const header of ['location', 'etag', 'x-write-lsn']) {
      expect({ header, value: retry.headers[header] }).toEqual({
        header,
        value: first.headers[header],
      });
    }
    expect(await count('Idempotent soup')).toBe(1);
    // Another key is another request.
    await create('create-soup-2', 'Idempotent soup').expect(201);
    expect(await count('Idempotent soup')).toBe(2);
  });

  it('the same key with a different request is a 409; a malformed key a 400', async () => {
    await create('reuse-1', 'First body').expect(201);
    const res = await create('reuse-1', 'Other body').expect(409);
    expect(String(res.body.message)).toContain('different request');
    expect(await count('Other body')).toBe(0);
    const bad = await create('bad key with spaces', 'X').expect(400);
    expect(JSON.stringify(bad.body)).toContain('Idempotency-Key');
  });

  it('after an unknown outcome (the write committed, the answer was lost) a retry never writes twice', async () => {
    await create('lost-answer', 'Lost answer soup').expect(201);
    // The key was marked committed inside the recipe's own writing transaction.
    const marked = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT committed FROM idempotency_keys WHERE key = 'lost-answer'`,
    );
    expect(marked.rows).toEqual([{ committed: true }]);
    // As after a 503 "outcome unknown": the key is marked committed, no response stored.
    await adminQuery(
      db,
      db.primaryPort,
      database,
      `UPDATE idempotency_keys SET status = 'in_progress', response_status = NULL, response_body = NULL WHERE key = 'lost-answer'`,
    );
    const retry = await create('lost-answer', 'Lost answer soup').expect(409);
    expect(String(retry.body.message)).toContain('was applied');
    expect(await count('Lost answer soup')).toBe(1);
  });

  it('a public route (the dashboard sign-in) keeps no key: one caller can never replay another', async () => {
    for (const key of [KEYS.opsRead, 'not-a-key']) {
      const res = await request(app.getHttpServer())
        .post('/dashboard/login')
        .set('idempotency-key', 'shared-by-everyone')
        .send({ key });
      // each sign-in answered for itself: the first signs in, the second is refused
      expect(res.status).toBe(key === KEYS.opsRead ? 204 : 401);
      expect(res.headers['idempotent-replayed']).toBeUndefined();
    }
    const rows = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT count(*) AS n FROM idempotency_keys WHERE key = 'shared-by-everyone'`,
    );
    expect(rows.rows).toEqual([{ n: '0' }]);
  });

  it('a request that failed before writing frees its key for a retry', async () => {
    const bad = await request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .set('idempotency-key', 'after-400')
      .send({ title: '' })
      .expect(400);
    expect(bad.body.statusCode).toBe(400);
    await create('after-400', 'Retried soup').expect(201);
    expect(await count('Retried soup')).toBe(1);
  });
});
