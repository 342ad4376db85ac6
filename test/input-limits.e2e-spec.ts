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

/** `{"a":{"a":…}}` nested `depth` levels, as raw JSON text. */
function nested(depth: number): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** A flat object with `n` keys, as raw JSON text. */
function manyKeys(n: number): string {
  return `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
}

/**
 * Bad input never costs a 500, and errors never echo a credential: every JSON route
 * refuses absurd nesting and key counts before parsing, with a 400 that says why.
 */
describe('input limits and error echoes', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  const ROUTES: Array<['post' | 'put', string]> = [
    ['post', '/v1/recipes'],
    ['post', '/v1/recipes/search'],
    ['post', '/v1/recipes/batch'],
    ['post', '/v1/users'],
    ['put', `/v1/users/${randomUUID()}/profile`],
    ['post', '/v1/consent-policies'],
    ['post', '/v1/ops/cache/invalidate'],
  ];

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'limits');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const send = (method: 'post' | 'put', path: string, raw: string): request.Test =>
    request(app.getHttpServer())
      [method](path)
      .set(bearer(KEYS.all))
      .set('content-type', 'application/json')
      .send(raw);

  it.each(ROUTES)(
    '%s %s: a body nested 3,000 levels deep is a 400 naming the limit',
    async (method, path) => {
      const res = await send(method, path, `{"title":${nested(3_000)}}`);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({
        statusCode: 400,
        error: 'Bad Request',
        message: 'body: nested deeper than 32 levels',
      });
      expect(typeof res.body.requestId).toBe('string');
    },
  );

  it.each(ROUTES)(
    '%s %s: a body with 20,000 keys is a 400 naming the limit',
    async (method, path) => {
      const res = await send(method, path, manyKeys(20_000));
      expect(res.status).toBe(400);
      expect(res.body.message).toBe('body: more than 10000 object keys');
    },
  );

  it('writes nothing for a refused body, and still takes a good one', async () => {
    const before = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT count(*)::int AS n FROM recipes',
    );
    await send('post', '/v1/recipes/batch', `{"recipes":[${nested(100)}]}`).expect(400);
    const after = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT count(*)::int AS n FROM recipes',
    );
    expect(after.rows[0].n).toBe(before.rows[0].n);
    await request(app.getHttpServer())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send({
        title: 'Within limits',
        description: 'd',
        ingredients: ['x'],
        steps: ['y'],
        cuisine: 'italian',
        tags: [],
        dietary: [],
        totalMinutes: 5,
      })
      .expect(201);
  });

  it('still answers malformed JSON with a 400', async () => {
    const res = await send('post', '/v1/users', '{"email": ');
    expect(res.status).toBe(400);
    expect(res.body.statusCode).toBe(400);
  });

  it('never echoes a query string (a credential) in a 404', async () => {
    const secret = 'sk_live_do_not_echo_me';
    for (const path of [
      `/dashboard/nowhere?token=${secret}`,
      `/v1/nowhere?api_key=${secret}&x=1`,
    ]) {
      const res = await request(app.getHttpServer()).get(path).set(bearer(KEYS.all));
      expect(res.status).toBe(404);
      expect(JSON.stringify(res.body)).not.toContain(secret);
      expect(res.body.message).toBe(`Cannot GET ${path.slice(0, path.indexOf('?'))}`);
    }
  });
});
