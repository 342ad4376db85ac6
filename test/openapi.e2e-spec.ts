import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import openapiTS, { astToString } from 'openapi-typescript';
import type { OpenAPI3 } from 'openapi-typescript';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import type { Response } from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const run = promisify(execFile);

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';
interface Route {
  method: string;
  path: string;
}
interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>;
  components: { schemas: Record<string, unknown> };
}
interface ResponseObject {
  content?: Record<string, { schema?: unknown }>;
}

/**
 * Routes the app serves on purpose outside the document: the document itself and the
 * dashboard's static assets (script and styles of the HTML page).
 */
const UNDOCUMENTED = new Set(['GET /docs-json', 'GET /docs-yaml', 'GET /dashboard/assets/{name}']);

/** `printRoutes({ commonPrefix: false })`: a tree, each line a path below its parent line. */
export function routesOfTree(tree: string): Route[] {
  const routes: Route[] = [];
  const parents: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) {
      continue;
    }
    const depth = m[1].length / 4;
    const path = (parents[depth - 1] ?? '') + m[2];
    parents[depth] = path;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) {
      routes.push({ method, path: path.replace(/:(\w+)/g, '{$1}') });
    }
  }
  return routes;
}

/**
 * The document's schemas for Ajv, stricter: an object schema is closed (a live field the
 * document does not name fails), and a nullable nested DTO accepts null.
 */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) {
    return schema.map(closed);
  }
  if (typeof schema !== 'object' || schema === null) {
    return schema;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] =
      k === 'properties'
        ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, closed(s)]))
        : closed(v);
  }
  if ('properties' in out && !('additionalProperties' in out)) {
    out.additionalProperties = false;
  }
  // `{ nullable, allOf: [$ref] }` (a nullable nested DTO): Ajv applies `nullable` to `type` only
  const allOf = out.allOf as unknown[] | undefined;
  if (out.nullable === true && allOf?.length === 1) {
    return { anyOf: [allOf[0], { type: 'null' }] };
  }
  return out;
}

describe('OpenAPI document', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let doc: Doc;
  let ajv: Ajv;
  const validators = new Map<string, ValidateFunction>();
  const checked = new Set<string>();

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'openapi');
    app = await bootApp(testConfig(env, database));
    const res = await request(app.getHttpServer()).get('/docs-json').expect(200);
    doc = res.body as Doc;
    // OpenAPI 3.0 schemas: `nullable` is Ajv's own keyword; `example` and `format: binary`
    // are annotations.
    ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    ajv.addFormat('date-time', (s: string) =>
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s),
    );
    ajv.addFormat('email', /^[^\s@]+@[^\s@]+$/);
    ajv.addFormat('binary', () => true);
    ajv.addSchema(
      { $id: 'openapi', components: { schemas: closed(doc.components.schemas) } },
      'openapi',
    );
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const http = (): ReturnType<NestFastifyApplication['getHttpServer']> => app.getHttpServer();

  /** The live answer matches the schema the document gives for its route and status. */
  function expectDocumented(res: Response, method: Method, path: string): void {
    const response = doc.paths[path]?.[method]?.responses[String(res.status)];
    expect({ route: `${method} ${path}`, status: res.status, documented: !!response }).toEqual({
      route: `${method} ${path}`,
      status: res.status,
      documented: true,
    });
    const schema = response.content?.['application/json']?.schema;
    if (res.status === 204 || res.status === 304) {
      expect(res.text ?? '').toBe('');
      return;
    }
    expect({ route: `${method} ${path} ${res.status}`, hasSchema: !!schema }).toEqual({
      route: `${method} ${path} ${res.status}`,
      hasSchema: true,
    });
    const key = `${method} ${path} ${res.status}`;
    let validate = validators.get(key);
    if (!validate) {
      // $refs in the document point at #/components/schemas: resolve them in 'openapi'
      const text = JSON.stringify(closed(schema)).replaceAll(
        '"#/components/',
        '"openapi#/components/',
      );
      validate = ajv.compile(JSON.parse(text) as object);
      validators.set(key, validate);
    }
    const ok = validate(res.body);
    expect({ route: key, errors: ok ? [] : validate.errors }).toEqual({ route: key, errors: [] });
    checked.add(key);
  }

  it('is a valid OpenAPI document', async () => {
    await expect(SwaggerParser.validate(structuredClone(doc) as never)).resolves.toBeDefined();
  });

  it('has every route of API.md, or the README lists it as not yet built', async () => {
    // test/fixtures/api-md-routes.json: the route tables of shared/spec/API.md (verb, path;
    // `:id` as `{id}`; GET/PUT rows and "top-sql, /waits, …" rows expanded), generated once
    // from API.md: regenerate it when the contract changes.
    const contract = JSON.parse(
      await readFile(join(REPO_ROOT, 'test/fixtures/api-md-routes.json'), 'utf8'),
    ) as Route[];
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const section = /### Routes of API\.md not yet built\n([\s\S]*?)(?=\n#|$)/.exec(readme);
    expect(section).not.toBeNull();
    const notBuilt = new Set(
      [...section![1].matchAll(/^- `([A-Z]+) (\S+)`/gm)].map((m) => `${m[1]} ${m[2]}`),
    );
    const documented = (r: Route): boolean =>
      doc.paths[r.path]?.[r.method.toLowerCase()] !== undefined;
    const missing = contract
      .filter((r) => !documented(r) && !notBuilt.has(`${r.method} ${r.path}`))
      .map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
    // and the README's list is not stale: nothing listed there is in fact served
    const stale = contract
      .filter((r) => documented(r) && notBuilt.has(`${r.method} ${r.path}`))
      .map((r) => `${r.method} ${r.path}`);
    expect(stale).toEqual([]);
  });

  it('documents every route the app serves, and nothing it does not serve', () => {
    const tree = app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
    const served = routesOfTree(tree).map((r) => `${r.method} ${r.path}`);
    expect(served.length).toBeGreaterThan(50);
    const inDoc = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(served.filter((r) => !inDoc.includes(r) && !UNDOCUMENTED.has(r))).toEqual([]);
    expect(inDoc.filter((r) => !served.includes(r))).toEqual([]);
  });

  it('documents the headers and errors of the contract', () => {
    const op = (path: string, method: Method): Record<string, unknown> => doc.paths[path][method];
    const headers = (path: string, method: Method): string[] =>
      ((op(path, method).parameters ?? []) as Array<{ in: string; name: string }>)
        .filter((p) => p.in === 'header')
        .map((p) => p.name);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, o] of Object.entries(ops)) {
        if (!path.startsWith('/v1/')) {
          continue;
        }
        const names = headers(path, method as Method);
        expect({ path, method, names }).toEqual({
          path,
          method,
          names: expect.arrayContaining(['x-consistency', 'x-write-lsn', 'x-request-id']),
        });
        if (method !== 'get') {
          expect({ path, method, names }).toEqual({
            path,
            method,
            names: expect.arrayContaining(['Idempotency-Key']),
          });
        }
        for (const status of ['400', '401', '403', '429']) {
          const schema = o.responses[status]?.content?.['application/json']?.schema;
          expect({ path, method, status, schema }).toEqual({
            path,
            method,
            status,
            schema: { $ref: '#/components/schemas/ErrorResponseDto' },
          });
        }
      }
    }
    expect(headers('/v1/recipes/{id}', 'patch')).toContain('If-Match');
    expect(headers('/v1/recipes/{id}', 'get')).toContain('If-None-Match');
    expect(doc.paths['/v1/recipes/{id}'].get.responses['304']).toBeDefined();
    const created = doc.paths['/v1/recipes'].post.responses['201'] as { headers?: object };
    expect(Object.keys(created.headers ?? {})).toEqual(
      expect.arrayContaining(['Location', 'ETag']),
    );
    // every 201 and 202 names where the new resource (or its status) is
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, o] of Object.entries(ops)) {
        for (const status of ['201', '202']) {
          const r = o.responses[status] as { headers?: object } | undefined;
          if (r) {
            expect({ path, method, headers: Object.keys(r.headers ?? {}) }).toEqual({
              path,
              method,
              headers: expect.arrayContaining(['Location']),
            });
          }
        }
      }
    }
    const error = doc.components.schemas.ErrorResponseDto as {
      properties: Record<string, { type?: string }>;
      required: string[];
    };
    expect(error.properties.message.type).toBe('string');
    expect(error.required).toEqual(
      expect.arrayContaining(['statusCode', 'error', 'message', 'requestId']),
    );
  });

  it('answers live requests with the documented shapes', async () => {
    const all = bearer(KEYS.all);
    const suffix = randomUUID().slice(0, 8);
    const user = await request(http())
      .post('/v1/users')
      .set(all)
      .send({ email: `openapi-${suffix}@example.com`, displayName: 'Open Api' });
    expectDocumented(user, 'post', '/v1/users');
    const userId = (user.body as { id: string }).id;
    expectDocumented(
      await request(http()).get(`/v1/users/${userId}`).set(all).set('x-consistency', 'strong'),
      'get',
      '/v1/users/{id}',
    );
    expectDocumented(
      await request(http())
        .put(`/v1/users/${userId}/profile`)
        .set(all)
        .send({ data: { a: 1 } }),
      'put',
      '/v1/users/{id}/profile',
    );
    expectDocumented(
      await request(http())
        .post('/v1/users')
        .set(all)
        .send({ email: `OPENAPI-${suffix}@example.com`, displayName: 'again' }),
      'post',
      '/v1/users',
    );

    const recipe = (n: number): object => ({
      title: `OpenAPI soup ${n}`,
      ingredients: ['water'],
      steps: ['boil'],
      cuisine: `oa-${suffix}`,
      tags: ['t'],
      totalMinutes: 10 + n,
      authorId: userId,
    });
    const created = await request(http()).post('/v1/recipes').set(all).send(recipe(1));
    expectDocumented(created, 'post', '/v1/recipes');
    const recipeId = (created.body as { id: string }).id;
    await request(http()).post('/v1/recipes').set(all).send(recipe(2)).expect(201);
    const got = await request(http())
      .get(`/v1/recipes/${recipeId}`)
      .set(all)
      .set('x-consistency', 'strong');
    expectDocumented(got, 'get', '/v1/recipes/{id}');
    const etag = got.headers.etag;
    expectDocumented(
      await request(http())
        .get(`/v1/recipes/${recipeId}`)
        .set(all)
        .set('x-consistency', 'strong')
        .set('if-none-match', etag),
      'get',
      '/v1/recipes/{id}',
    );
    const page = await request(http())
      .get(`/v1/recipes?cuisine=oa-${suffix}&limit=1`)
      .set(all)
      .set('x-consistency', 'strong');
    expectDocumented(page, 'get', '/v1/recipes');
    expect((page.body as { nextCursor: unknown }).nextCursor).toEqual(expect.any(String));
    expectDocumented(
      await request(http())
        .patch(`/v1/recipes/${recipeId}`)
        .set(all)
        .set('if-match', etag)
        .send({ totalMinutes: 42 }),
      'patch',
      '/v1/recipes/{id}',
    );
    expectDocumented(
      await request(http())
        .patch(`/v1/recipes/${recipeId}`)
        .set(all)
        .set('if-match', etag)
        .send({ totalMinutes: 43 }),
      'patch',
      '/v1/recipes/{id}',
    );
    expectDocumented(
      await request(http())
        .post('/v1/recipes/search')
        .set(all)
        .send({ recipeId, filters: { cuisine: `oa-${suffix}` } }),
      'post',
      '/v1/recipes/search',
    );
    expectDocumented(
      await request(http()).post('/v1/recipes').set(all).send({ title: '', extra: 1 }),
      'post',
      '/v1/recipes',
    );
    expectDocumented(
      await request(http()).get(`/v1/recipes/${randomUUID()}`).set(all),
      'get',
      '/v1/recipes/{id}',
    );
    expectDocumented(await request(http()).get('/v1/recipes'), 'get', '/v1/recipes');
    expectDocumented(
      await request(http()).get('/v1/recipes').set(bearer(KEYS.none)),
      'get',
      '/v1/recipes',
    );
    expectDocumented(
      await request(http()).get('/v1/recipes').set(all).set('x-consistency', 'sometimes'),
      'get',
      '/v1/recipes',
    );
    expectDocumented(
      await request(http()).delete(`/v1/recipes/${recipeId}`).set(all),
      'delete',
      '/v1/recipes/{id}',
    );

    expectDocumented(
      await request(http()).get('/v1/consent-policies').set(all),
      'get',
      '/v1/consent-policies',
    );
    expectDocumented(
      await request(http())
        .get(`/v1/users/${userId}/consents`)
        .set(all)
        .set('x-consistency', 'strong'),
      'get',
      '/v1/users/{id}/consents',
    );
    expectDocumented(
      await request(http()).get(`/v1/users/${userId}/consents/history`).set(all),
      'get',
      '/v1/users/{id}/consents/history',
    );
    const exported = await request(http())
      .post(`/v1/users/${userId}/exports`)
      .set(all)
      .send({ format: 'json' });
    expectDocumented(exported, 'post', '/v1/users/{id}/exports');
    expectDocumented(
      await request(http())
        .get(`/v1/exports/${(exported.body as { id: string }).id}`)
        .set(all)
        .set('x-consistency', 'strong'),
      'get',
      '/v1/exports/{id}',
    );
    expectDocumented(
      await request(http()).get('/v1/audit-logs?limit=1').set(all).set('x-consistency', 'strong'),
      'get',
      '/v1/audit-logs',
    );
    expectDocumented(
      await request(http()).get('/v1/audit-logs/verify').set(all),
      'get',
      '/v1/audit-logs/verify',
    );
    expectDocumented(
      await request(http()).get('/v1/compliance/reports').set(all),
      'get',
      '/v1/compliance/reports',
    );
    expectDocumented(await request(http()).get('/v1/backups').set(all), 'get', '/v1/backups');
    expectDocumented(
      await request(http()).get('/v1/ops/topology').set(all),
      'get',
      '/v1/ops/topology',
    );
    expectDocumented(await request(http()).get('/v1/ops/pools').set(all), 'get', '/v1/ops/pools');
    expectDocumented(
      await request(http()).get('/v1/ops/alerts/silences').set(all),
      'get',
      '/v1/ops/alerts/silences',
    );
    expectDocumented(await request(http()).get('/health/live'), 'get', '/health/live');
    expectDocumented(await request(http()).get('/health/ready'), 'get', '/health/ready');
    expect(checked.size).toBeGreaterThan(20);
  });

  it('generates a typed client that compiles a caller and rejects a wrong body', async () => {
    const out = join(REPO_ROOT, '.stack', 'openapi-client');
    await mkdir(out, { recursive: true });
    const ast = await openapiTS(structuredClone(doc) as unknown as OpenAPI3);
    await writeFile(join(out, 'schema.d.ts'), astToString(ast));
    const tsc = join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
    const project = join(REPO_ROOT, 'test', 'openapi-client', 'tsconfig.json');
    await expect(run(tsc, ['-p', project], { cwd: REPO_ROOT })).resolves.toBeDefined();

    // the same caller with a number where the document says string: the types are real
    const good = await readFile(
      join(REPO_ROOT, 'test', 'openapi-client', 'client-check.ts'),
      'utf8',
    );
    const wrong = good.replace("email: 'ada@example.com'", 'email: 42');
    expect(wrong).not.toBe(good);
    await writeFile(join(out, 'client-wrong.ts'), wrong);
    await writeFile(
      join(out, 'tsconfig.wrong.json'),
      JSON.stringify({
        extends: project,
        compilerOptions: { rootDirs: ['.'] },
        files: ['client-wrong.ts', 'schema.d.ts'],
      }),
    );
    const failed = await run(tsc, ['-p', join(out, 'tsconfig.wrong.json')], {
      cwd: REPO_ROOT,
    }).then(
      () => null,
      (err: { stdout: string }) => err.stdout,
    );
    expect(failed).toMatch(
      /client-wrong\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/,
    );
  });
});
