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
import { axis, recipeBody, seededVector } from './support/vectors.js';

interface Recipe {
  id: string;
  title: string;
  version: number;
  hasEmbedding: boolean;
  cuisine: string;
}

describe('recipes CRUD (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  const strong = { 'x-consistency': 'strong' };

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'recipes');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const server = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();
  const count = async (): Promise<number> =>
    Number(
      (await adminQuery(db, db.primaryPort, database, 'SELECT count(*) AS n FROM recipes')).rows[0]
        .n,
    );

  it('creates, reads, updates with If-Match, and deletes a recipe', async () => {
    const created = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody({ embedding: axis(3) }))
      .expect(201);
    const recipe = created.body as Recipe;
    expect(created.headers.location).toBe(`/v1/recipes/${recipe.id}`);
    expect(created.headers.etag).toBe('"1"');
    expect(recipe).toMatchObject({ title: 'Weeknight pasta', version: 1, hasEmbedding: true });

    const read = await request(server())
      .get(`/v1/recipes/${recipe.id}`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect((read.body as Recipe).title).toBe('Weeknight pasta');

    const updated = await request(server())
      .patch(`/v1/recipes/${recipe.id}`)
      .set(bearer(KEYS.all))
      .set('if-match', '"1"')
      .send({ title: 'Better pasta' })
      .expect(200);
    expect(updated.body).toMatchObject({ title: 'Better pasta', version: 2 });
    expect(updated.headers.etag).toBe('"2"');

    const stale = await request(server())
      .patch(`/v1/recipes/${recipe.id}`)
      .set(bearer(KEYS.all))
      .set('if-match', '"1"')
      .send({ title: 'Lost update' })
      .expect(412);
    expect(stale.body.message).toContain('version 2');
    const afterStale = await request(server())
      .get(`/v1/recipes/${recipe.id}`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect((afterStale.body as Recipe).title).toBe('Better pasta');

    await request(server()).delete(`/v1/recipes/${recipe.id}`).set(bearer(KEYS.all)).expect(204);
    await request(server())
      .get(`/v1/recipes/${recipe.id}`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(404);
    await request(server()).delete(`/v1/recipes/${recipe.id}`).set(bearer(KEYS.all)).expect(404);
    await request(server())
      .patch(`/v1/recipes/${randomUUID()}`)
      .set(bearer(KEYS.all))
      .send({ title: 'x' })
      .expect(404);
  });

  it('answers conditional requests: 304 to a matching If-None-Match, If-Match: * needs the recipe', async () => {
    const created = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody())
      .expect(201);
    const id = (created.body as Recipe).id;
    const path = `/v1/recipes/${id}`;
    // the full path (strong), then the default path twice (the second may be the fast path)
    for (const headers of [strong, {}, {}]) {
      for (const tagValue of ['"1"', 'W/"1"', '"7", "1"', '*']) {
        const res = await request(server())
          .get(path)
          .set(bearer(KEYS.all))
          .set(headers)
          .set('if-none-match', tagValue)
          .expect(304);
        expect(res.headers.etag).toBe('"1"');
        expect(res.text ?? '').toBe('');
      }
    }
    const changed = await request(server())
      .get(path)
      .set(bearer(KEYS.all))
      .set('if-none-match', '"2"')
      .expect(200);
    expect((changed.body as Recipe).version).toBe(1);

    const any = await request(server())
      .patch(path)
      .set(bearer(KEYS.all))
      .set('if-match', '*')
      .send({ title: 'Any version' })
      .expect(200);
    expect(any.body).toMatchObject({ title: 'Any version', version: 2 });
    expect(any.headers.etag).toBe('"2"');
    // the old ETag no longer matches: the new representation comes in full
    const fresh = await request(server())
      .get(path)
      .set(bearer(KEYS.all))
      .set(strong)
      .set('if-none-match', '"1"')
      .expect(200);
    expect((fresh.body as Recipe).title).toBe('Any version');

    const missing = randomUUID();
    const none = await request(server())
      .patch(`/v1/recipes/${missing}`)
      .set(bearer(KEYS.all))
      .set('if-match', '*')
      .send({ title: 'Nothing there' })
      .expect(412);
    expect(none.body.message).toContain('does not exist');
    await request(server())
      .get(`/v1/recipes/${missing}`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(404);

    const list = await request(server())
      .patch(path)
      .set(bearer(KEYS.all))
      .set('if-match', '"1", "2"')
      .send({ title: 'Listed' })
      .expect(400);
    expect(JSON.stringify(list.body.message)).toContain('If-Match');
    const after = await request(server()).get(path).set(bearer(KEYS.all)).set(strong).expect(200);
    expect(after.body).toMatchObject({ title: 'Any version', version: 2 });

    // PUT embedding and DELETE honour If-Match too: a stale version changes nothing
    await request(server())
      .put(`${path}/embedding`)
      .set(bearer(KEYS.all))
      .set('if-match', '"1"')
      .send({ embedding: axis(3) })
      .expect(412);
    const embedded = await request(server())
      .put(`${path}/embedding`)
      .set(bearer(KEYS.all))
      .set('if-match', '"2"')
      .send({ embedding: axis(3) })
      .expect(200);
    expect(embedded.headers.etag).toBe('"3"');
    const staleDelete = await request(server())
      .delete(path)
      .set(bearer(KEYS.all))
      .set('if-match', '"2"')
      .expect(412);
    expect(staleDelete.body.message).toContain('at version 3');
    await request(server()).get(path).set(bearer(KEYS.all)).set(strong).expect(200);
    await request(server()).delete(path).set(bearer(KEYS.all)).set('if-match', '"3"').expect(204);
    await request(server()).get(path).set(bearer(KEYS.all)).set(strong).expect(404);
    await request(server()).delete(path).set(bearer(KEYS.all)).set('if-match', '*').expect(412);
  });

  it('takes an empty JSON body where none is needed, and names the fields where one is', async () => {
    const created = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody())
      .expect(201);
    const id = (created.body as Recipe).id;
    const before = await count();
    // a generic client: Content-Type set, no body
    await request(server())
      .delete(`/v1/recipes/${id}`)
      .set(bearer(KEYS.all))
      .set('content-type', 'application/json')
      .expect(204);
    expect(await count()).toBe(before - 1);
    await request(server()).get(`/v1/recipes/${id}`).set(bearer(KEYS.all)).set(strong).expect(404);

    const empty = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .set('content-type', 'application/json')
      .expect(400);
    expect(JSON.stringify(empty.body.message)).toContain('title');
    expect(await count()).toBe(before - 1);
  });

  it('sets an embedding with PUT', async () => {
    const created = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody())
      .expect(201);
    expect((created.body as Recipe).hasEmbedding).toBe(false);
    const res = await request(server())
      .put(`/v1/recipes/${(created.body as Recipe).id}/embedding`)
      .set(bearer(KEYS.all))
      .send({ embedding: axis(7) })
      .expect(200);
    expect(res.body).toMatchObject({ hasEmbedding: true, version: 2 });
  });

  it('upserts a batch of 100 in one call, and a replay only bumps versions', async () => {
    const items = Array.from({ length: 100 }, (_, i) =>
      recipeBody({
        id: randomUUID(),
        title: `Batch ${i}`,
        cuisine: 'batch',
        embedding: seededVector(i + 1),
      }),
    );
    const before = await count();
    const res = await request(server())
      .post('/v1/recipes/batch')
      .set(bearer(KEYS.all))
      .send({ items })
      .expect(200);
    expect(res.body.count).toBe(100);
    expect(await count()).toBe(before + 100);
    // one audit row per recipe, appended by one statement: consecutive links of the chain
    const audited = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT seq::int8::text AS seq, resource FROM audit_logs WHERE resource = ANY($1::text[]) ORDER BY audit_logs.seq`,
      [items.map((i) => `recipe:${String(i.id)}`)],
    );
    const seqs = (audited.rows as Array<{ seq: string }>).map((r) => Number(r.seq));
    expect(seqs).toHaveLength(100);
    expect(seqs[99] - seqs[0]).toBe(99);
    const verified = await request(server())
      .get('/v1/audit-logs/verify')
      .set(bearer(KEYS.all))
      .expect(200);
    expect((verified.body as { valid: boolean }).valid).toBe(true);

    await request(server())
      .post('/v1/recipes/batch')
      .set(bearer(KEYS.all))
      .send({ items })
      .expect(200);
    expect(await count()).toBe(before + 100);
    const versions = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT DISTINCT version FROM recipes WHERE cuisine = 'batch'`,
    );
    expect(versions.rows).toEqual([{ version: 2 }]);
  });

  it('rejects a batch with one bad item whole, naming the item and field, writing nothing', async () => {
    const before = await count();
    const items = [
      recipeBody({ title: 'ok' }),
      recipeBody({ totalMinutes: -5 }),
      recipeBody({ embedding: [1, 2, 3] }),
    ];
    const res = await request(server())
      .post('/v1/recipes/batch')
      .set(bearer(KEYS.all))
      .send({ items })
      .expect(400);
    expect(res.body.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ field: 'items.1.totalMinutes' }),
        {
          field: 'items.2.embedding',
          message: 'items.2.embedding must have exactly 1536 numbers (got 3)',
        },
      ]),
    );
    expect(await count()).toBe(before);
    const tooMany = Array.from({ length: 101 }, () => recipeBody());
    const big = await request(server())
      .post('/v1/recipes/batch')
      .set(bearer(KEYS.all))
      .send({ items: tooMany })
      .expect(400);
    expect(big.body.message).toContain('items must contain no more than 100 elements');
  });

  it.each([
    [
      'a missing title and a negative time',
      { title: undefined, totalMinutes: -1 },
      ['title', 'totalMinutes'],
    ],
    ['an unknown field', { color: 'red' }, ['color']],
    ['an embedding of the wrong dimension', { embedding: [0.1, 0.2] }, ['embedding']],
    [
      'an embedding with a non-number',
      { embedding: [...axis(1).slice(0, 1535), 'x'] },
      ['embedding'],
    ],
    ['an all-zero embedding', { embedding: new Array(1536).fill(0) }, ['embedding']],
    ['a bad author id', { authorId: 'nope' }, ['authorId']],
  ])('answers 400 for %s, naming each field, writing nothing', async (_name, overrides, fields) => {
    const before = await count();
    const res = await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody(overrides))
      .expect(400);
    const message = (res.body as { message: string }).message;
    for (const field of fields) {
      expect(message).toContain(field);
    }
    expect(await count()).toBe(before);
  });

  it('lists with filters and an opaque cursor, each row once', async () => {
    const author = randomUUID();
    for (let i = 0; i < 5; i++) {
      await request(server())
        .post('/v1/recipes')
        .set(bearer(KEYS.all))
        .send(
          recipeBody({
            title: `Paged ${i}`,
            authorId: author,
            cuisine: 'paged',
            totalMinutes: 10 + i,
          }),
        )
        .expect(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await request(server())
        .get('/v1/recipes')
        .query({ authorId: author, limit: 2, ...(cursor ? { cursor } : {}) })
        .set(bearer(KEYS.all))
        .set(strong)
        .expect(200);
      seen.push(...(res.body.items as Recipe[]).map((r) => r.title));
      cursor = res.body.nextCursor as string | null;
    } while (cursor);
    expect(seen).toEqual(['Paged 4', 'Paged 3', 'Paged 2', 'Paged 1', 'Paged 0']);

    const filtered = await request(server())
      .get('/v1/recipes')
      .query({ cuisine: 'paged', maxTotalMinutes: 11 })
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    expect((filtered.body.items as Recipe[]).map((r) => r.title).sort()).toEqual([
      'Paged 0',
      'Paged 1',
    ]);

    await request(server())
      .get('/v1/recipes')
      .query({ cursor: 'garbage' })
      .set(bearer(KEYS.all))
      .expect(400);
    await request(server())
      .get('/v1/recipes')
      .query({ limit: 1000 })
      .set(bearer(KEYS.all))
      .expect(400);
  });

  it('needs recipes:write to write and recipes:read to read', async () => {
    await request(server())
      .post('/v1/recipes')
      .set(bearer(KEYS.opsRead))
      .send(recipeBody())
      .expect(403);
    await request(server()).get('/v1/recipes').set(bearer(KEYS.opsRead)).expect(403);
  });
});
