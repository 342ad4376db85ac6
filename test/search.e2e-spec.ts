import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pgvector from 'pgvector';
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
import { axis, cosineDistance } from './support/vectors.js';

interface Hit {
  id: string;
  title: string;
  dietary: string[];
  distance: number;
}
interface SearchBody {
  items: Hit[];
  plan: 'hnsw' | 'exact';
  tookMs: number;
}

const BACKGROUND_ROWS = 3000;
const RARE = 'rare-diet'; // every 100th background row: 1 %

describe('vector search (real stack, pgvector HNSW)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  let iterative: NestFastifyApplication;
  const ids: Record<string, string> = {};
  const apps: NestFastifyApplication[] = [];

  async function boot(overrides: Record<string, string> = {}): Promise<NestFastifyApplication> {
    const booted = await bootApp(testConfig(env, database, overrides));
    apps.push(booted);
    return booted;
  }

  function search(target: NestFastifyApplication, body: Record<string, unknown>): request.Test {
    return request(target.getHttpServer())
      .post('/v1/recipes/search')
      .set(bearer(KEYS.all))
      .send(body);
  }

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'search');
    // Background: random vectors (far from the axis set: cosine distance ≈ 1).
    await adminQuery(
      db,
      db.primaryPort,
      database,
      `INSERT INTO recipes (title, cuisine, dietary, total_minutes, embedding)
       SELECT 'bg ' || g, CASE WHEN g % 2 = 0 THEN 'italian' ELSE 'thai' END,
              CASE WHEN g % 100 = 0 THEN ARRAY[$1] ELSE '{}'::text[] END, 30,
              (SELECT array_agg(random() - 0.5) FROM generate_series(1, 1536) WHERE g > 0)::vector
         FROM generate_series(1, $2::int) g`,
      [RARE, BACKGROUND_ROWS],
    );
    // The hand-built set: distances to axis(0) are known exactly.
    const set: Array<[string, number[]]> = [
      ['r0', axis(0)],
      ['r1', axis(0, 1, 0.5)],
      ['r2', axis(0, 1, 1)],
      ['r3', axis(1)],
    ];
    for (const [name, v] of set) {
      const res = await adminQuery(
        db,
        db.primaryPort,
        database,
        `INSERT INTO recipes (title, cuisine, total_minutes, embedding) VALUES ($1, 'axis', 10, $2::vector) RETURNING id::text`,
        [name, pgvector.toSql(v)],
      );
      ids[name] = (res.rows[0] as { id: string }).id;
    }
    // As autovacuum would: planner statistics for the freshly loaded table.
    await adminQuery(db, db.primaryPort, database, 'ANALYZE recipes');
    // Searches run on the replica: wait until it has replayed the load.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const res = await adminQuery(
        db,
        db.replicaPort,
        database,
        'SELECT count(*)::int AS n FROM recipes',
      );
      if ((res.rows[0] as { n: number }).n === BACKGROUND_ROWS + 4) {
        break;
      }
      await sleep(200);
    }
    app = await boot({ VECTOR_RECALL_SAMPLE_RATE: '1' });
    iterative = await boot({ VECTOR_EXACT_MAX_ROWS: '0' });
  });

  afterAll(async () => {
    for (const a of apps) {
      await a.close();
    }
    await dropTestDatabase(db, database);
  });

  it('returns the nearest recipes in order, with exact distances, cutting at maxDistance', async () => {
    const res = await search(app, { embedding: axis(0) }).expect(200);
    const body = res.body as SearchBody;
    expect(body.plan).toBe('hnsw');
    expect(body.items.map((h) => h.title)).toEqual(['r0', 'r1', 'r2']);
    expect(body.items[1].distance).toBeCloseTo(cosineDistance(axis(0), axis(0, 1, 0.5)), 5);
    expect(body.items[2].distance).toBeCloseTo(1 - 1 / Math.SQRT2, 5);
    expect(body.tookMs).toBeGreaterThan(0);

    const tight = await search(app, { embedding: axis(0), maxDistance: 0.2 }).expect(200);
    expect((tight.body as SearchBody).items.map((h) => h.title)).toEqual(['r0', 'r1']);
  });

  it('finds more-like-this by recipeId, excluding the recipe itself', async () => {
    const res = await search(app, { recipeId: ids.r0 }).expect(200);
    expect((res.body as SearchBody).items.map((h) => h.title)).toEqual(['r1', 'r2']);
    const similar = await request(app.getHttpServer())
      .get(`/v1/recipes/${ids.r0}/similar`)
      .set(bearer(KEYS.all))
      .expect(200);
    expect((similar.body as SearchBody).items.map((h) => h.title)).toEqual(['r1', 'r2']);
  });

  it.each([
    ['exact scan of the filtered rows', () => app, 'exact'],
    ['HNSW iterative scan', () => iterative, 'hnsw'],
  ])(
    'returns the full limit for a rare filter (1 %% of rows) via %s',
    async (_name, target, plan) => {
      // A different query vector per case: equal queries would share a cached result.
      const res = await search(target(), {
        embedding: axis(plan === 'exact' ? 5 : 6),
        filters: { dietary: [RARE] },
        limit: 20,
        maxDistance: 2,
      }).expect(200);
      const body = res.body as SearchBody;
      expect(body.plan).toBe(plan);
      expect(body.items).toHaveLength(20);
      expect(body.items.every((h) => h.dietary.includes(RARE))).toBe(true);
      const distances = body.items.map((h) => h.distance);
      expect([...distances].sort((a, b) => a - b)).toEqual(distances);
    },
  );

  it.each([
    ['a wrong dimension', { embedding: [1, 2, 3] }, 'embedding must have exactly 1536'],
    [
      'NaN as a string',
      { embedding: [...axis(0).slice(1), 'NaN'] },
      'embedding element 1535 is not a number',
    ],
    [
      'a non-number',
      { embedding: [...axis(0).slice(1), true] },
      'embedding element 1535 is not a number',
    ],
    [
      'a limit above the cap',
      { embedding: axis(0), limit: 51 },
      'limit must not be greater than 50',
    ],
    ['a limit of 0', { embedding: axis(0), limit: 0 }, 'limit must not be less than 1'],
    ['an unknown filter', { embedding: axis(0), filters: { color: 'red' } }, 'filters.color'],
    [
      'two query modes',
      { embedding: axis(0), recipeId: '00000000-0000-4000-8000-000000000000' },
      'exactly one of',
    ],
    ['no query mode', { limit: 5 }, 'exactly one of'],
    ['text without a provider', { text: 'pasta' }, 'embedding provider'],
    ['a bad maxDistance', { embedding: axis(0), maxDistance: 5 }, 'maxDistance'],
  ])('answers 400 for %s, naming it', async (_name, body, fragment) => {
    const res = await search(app, body).expect(400);
    expect((res.body as { message: string[] }).message.join('\n')).toContain(fragment);
  });

  it('answers 400 for Infinity (a number too large for a double)', async () => {
    const raw = JSON.stringify({ embedding: axis(0) }).replace('[1,', '[1e999,');
    const res = await request(app.getHttpServer())
      .post('/v1/recipes/search')
      .set(bearer(KEYS.all))
      .set('content-type', 'application/json')
      .send(raw)
      .expect(400);
    expect(res.body.message.join('\n')).toContain('element 0 is not finite');
  });

  it('answers 404 for more-like-this of an unknown recipe', async () => {
    await search(app, { recipeId: '00000000-0000-4000-8000-000000000000' }).expect(404);
  });

  it('answers 503 with a clear message when the statement timeout hits, and stays usable', async () => {
    const slow = await boot({ VECTOR_QUERY_TIMEOUT_MS: '1', VECTOR_EXACT_MAX_ROWS: '1000000' });
    const res = await search(slow, {
      embedding: axis(0),
      filters: { maxTotalMinutes: 1000 },
      maxDistance: 2,
    }).expect(503);
    expect(res.body.message).toContain('statement timeout');
    await request(slow.getHttpServer()).get('/health/ready').expect(200);
  });

  it('reports through EXPLAIN that the HNSW index serves searches', async () => {
    const res = await request(app.getHttpServer())
      .get('/v1/ops/vector-search/explain')
      .set(bearer(KEYS.all))
      .expect(200);
    expect(res.body).toMatchObject({
      indexUsed: true,
      indexName: 'recipes_embedding_hnsw_idx',
      rowsReturned: 20,
    });
    expect(res.body.buffers.sharedHit + res.body.buffers.sharedRead).toBeGreaterThan(0);
    const filtered = await request(app.getHttpServer())
      .get('/v1/ops/vector-search/explain')
      .query({ dietary: RARE })
      .set(bearer(KEYS.all))
      .expect(200);
    expect(filtered.body.indexUsed).toBe(true);
    expect(filtered.body.rowsScanned).toBeGreaterThan(filtered.body.rowsReturned);
  });

  it('measures live recall on sampled searches and exports it with latency metrics', async () => {
    await search(app, { embedding: axis(9), maxDistance: 2 }).expect(200);
    let text = '';
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      text = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
      if (/vector_search_recall_count\{[^}]*\} [1-9]/.test(text)) {
        break;
      }
      await sleep(100);
    }
    expect(text).toMatch(/vector_search_recall_count\{[^}]*\} [1-9]/);
    expect(text).toMatch(/vector_search_duration_seconds_count\{[^}]*plan="hnsw"[^}]*\} [1-9]/);
    expect(text).toMatch(/vector_search_returned_rows_bucket/);
    expect(text).toMatch(/vector_index_size_bytes\{[^}]*\} [1-9]/);
  });

  it('rebuilds the HNSW index concurrently as a job, one at a time, while searches go on', async () => {
    const started = await request(app.getHttpServer())
      .post('/v1/ops/vector-index/rebuild')
      .set(bearer(KEYS.all))
      .expect(202);
    const id = (started.body as { id: string }).id;
    expect(started.headers.location).toBe(`/v1/ops/jobs/${id}`);
    await request(app.getHttpServer())
      .post('/v1/ops/vector-index/rebuild')
      .set(bearer(KEYS.all))
      .expect(409);
    await search(app, { embedding: axis(0) }).expect(200);

    let status = 'running';
    const deadline = Date.now() + 120_000;
    while (status === 'running' && Date.now() < deadline) {
      await sleep(250);
      const job = await request(app.getHttpServer())
        .get(`/v1/ops/jobs/${id}`)
        .set(bearer(KEYS.all))
        .expect(200);
      status = (job.body as { status: string }).status;
    }
    expect(status).toBe('succeeded');
    const metrics = (await request(app.getHttpServer()).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(/vector_index_last_build_seconds\{[^}]*\} [0-9.]*[1-9]/);
    const after = await search(app, { embedding: axis(0) }).expect(200);
    expect((after.body as SearchBody).items.map((h) => h.title)).toEqual(['r0', 'r1', 'r2']);
  });

  describe('text search through an OpenAI-compatible provider (local server)', () => {
    let server: Server;
    let reply: (res: import('node:http').ServerResponse) => void;
    let withProvider: NestFastifyApplication;

    beforeAll(async () => {
      server = createServer((req, res) => {
        req.resume();
        req.on('end', () => reply(res));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      withProvider = await boot({
        EMBEDDINGS_PROVIDER: 'openai',
        EMBEDDINGS_URL: `http://127.0.0.1:${port}`,
        EMBEDDINGS_API_KEY: 'sk-test-secret',
        EMBEDDINGS_TIMEOUT_MS: '2000',
      });
    });

    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    const json = (status: number, body: unknown) => (res: import('node:http').ServerResponse) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };

    it('embeds the text and searches with it', async () => {
      reply = json(200, { data: [{ index: 0, embedding: axis(0) }], model: 'm', usage: {} });
      const res = await search(withProvider, { text: 'pasta' }).expect(200);
      expect((res.body as SearchBody).items.map((h) => h.title)).toEqual(['r0', 'r1', 'r2']);
    });

    it('answers 502 with a clear message when the provider fails', async () => {
      reply = json(500, { error: { message: 'model overloaded' } });
      const res = await search(withProvider, { text: 'pasta for a failing provider' }).expect(502);
      expect(res.body.message).toContain('500');
      expect(JSON.stringify(res.body)).not.toContain('sk-test-secret');
    });

    it('answers 502 when the provider returns the wrong dimension', async () => {
      reply = json(200, { data: [{ index: 0, embedding: [0.1, 0.2, 0.3] }] });
      const res = await search(withProvider, { text: 'pasta of the wrong dimension' }).expect(502);
      expect(res.body.message).toContain('1536');
    });
  });
});
