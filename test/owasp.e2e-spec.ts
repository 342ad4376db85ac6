import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA, VERSION_METADATA } from '@nestjs/common/constants.js';
import { ModulesContainer, Reflector } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { IS_PUBLIC, REQUIRED_SCOPES } from '../src/security/auth.decorators.js';
import { hashSecret } from '../src/security/api-key.service.js';
import { API_SCOPES, ApiScope } from '../src/security/scopes.js';
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

/**
 * The tests docs/security-owasp.md points to: function-level authorisation over every
 * route of the route table, property-level authorisation, security headers, CORS and
 * what errors never show.
 */

interface Route {
  method: string;
  path: string;
  isPublic: boolean;
  scopes: ApiScope[];
}

/** Routes that need no key, each for its reason (docs/security-owasp.md, API2). */
const PUBLIC_ROUTES = [
  'GET /health/live', // ECS probes carry no key
  'GET /health/ready',
  'GET /metrics', // Prometheus scrape; METRICS_REQUIRE_KEY closes it
  'GET /dashboard', // the sign-in page itself
  'GET /dashboard/assets/:name',
  'POST /dashboard/login',
  'POST /dashboard/logout',
];

/** One key per scope, and for each scope a key with every scope but that one. */
const SCOPE_KEYS = API_SCOPES.flatMap((scope) => [
  { id: `only-${scope.replace(':', '.')}`, secret: `key-only-${scope}`, scopes: [scope] },
  {
    id: `all-but-${scope.replace(':', '.')}`,
    secret: `key-all-but-${scope}`,
    scopes: API_SCOPES.filter((s) => s !== scope),
  },
]);
const secretOf = (id: string): string =>
  SCOPE_KEYS.find((k) => k.id === id.replace(':', '.'))!.secret;

/** Every route the app serves, from Nest's own route table (controllers' metadata). */
function routeTable(app: NestFastifyApplication): Route[] {
  const reflector = app.get(Reflector);
  const routes: Route[] = [];
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const type = wrapper.metatype as (new (...args: never[]) => object) | null;
      if (!type || !wrapper.instance) {
        continue;
      }
      const base = String(Reflect.getMetadata(PATH_METADATA, type) ?? '/');
      const version = Reflect.getMetadata(VERSION_METADATA, type) as unknown;
      const proto = type.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const handler = proto[name];
        if (name === 'constructor' || typeof handler !== 'function') {
          continue;
        }
        const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
        const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
        if (method === undefined || sub === undefined) {
          continue;
        }
        const parts = [typeof version === 'string' ? `v${version}` : '', base, sub]
          .flatMap((p) => p.split('/'))
          .filter((p) => p !== '');
        const targets = [handler, type];
        routes.push({
          method: RequestMethod[method],
          path: `/${parts.join('/')}`,
          isPublic: reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets) ?? false,
          scopes: reflector.getAllAndOverride<ApiScope[]>(REQUIRED_SCOPES, targets) ?? [],
        });
      }
    }
  }
  return routes;
}

/** A concrete URL for a route: ids are fresh UUIDs, other parameters a plain word. */
const concrete = (path: string): string =>
  path.replace(/:(\w+)/g, (_, name: string) => (name === 'id' ? randomUUID() : 'marketing'));

describe('OWASP API Top 10 checks (docs/security-owasp.md)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  let routes: Route[];

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'owasp');
    app = await bootApp(
      testConfig(env, database, {
        API_KEYS: JSON.stringify([
          { id: 'test-all', hash: hashSecret(KEYS.all), scopes: [...API_SCOPES] },
          { id: 'test-none', hash: hashSecret(KEYS.none), scopes: [] },
          ...SCOPE_KEYS.map((k) => ({ id: k.id, hash: hashSecret(k.secret), scopes: k.scopes })),
        ]),
      }),
    );
    routes = routeTable(app);
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  const send = (method: string, url: string) =>
    request(app.getHttpServer())[method.toLowerCase() as 'get' | 'post' | 'put' | 'delete'](url);

  describe('API5 function-level authorisation: the scope matrix of every route', () => {
    it('finds the routes (the table is not empty), and only the listed ones are public', () => {
      expect(routes.length).toBeGreaterThan(60);
      const open = routes.filter((r) => r.isPublic).map((r) => `${r.method} ${r.path}`);
      expect(open.sort()).toEqual([...PUBLIC_ROUTES].sort());
    });

    it('every other route declares at least one known scope', () => {
      const closed = routes.filter((r) => !r.isPublic);
      const undeclared = closed
        .filter((r) => r.scopes.length === 0 || r.scopes.some((s) => !API_SCOPES.includes(s)))
        .map((r) => `${r.method} ${r.path}`);
      expect(undeclared).toEqual([]);
      // every /v1 route is closed
      expect(closed.filter((r) => r.path.startsWith('/v1/')).length).toBe(
        routes.filter((r) => r.path.startsWith('/v1/')).length,
      );
    });

    it('every closed route answers 401 without a key or with an unknown one, and 403 without its scope', async () => {
      const seen: string[] = [];
      for (const route of routes.filter((r) => !r.isPublic)) {
        const url = concrete(route.path);
        const name = `${route.method} ${route.path}`;
        const missing = await send(route.method, url);
        const unknown = await send(route.method, url).set(bearer('not-a-key'));
        const none = await send(route.method, url).set(bearer(KEYS.none));
        // the key holding every scope but one the route needs
        const lacking = await send(route.method, url).set(
          bearer(secretOf(`all-but-${route.scopes[0]}`)),
        );
        expect({ name, statuses: [missing, unknown, none, lacking].map((r) => r.status) }).toEqual({
          name,
          statuses: [401, 401, 403, 403],
        });
        expect(lacking.body.message).toContain(route.scopes[0]);
        seen.push(name);
      }
      expect(seen.length).toBeGreaterThan(50);
    });

    it('a key with exactly the scopes of a read route passes the guard (GET routes)', async () => {
      for (const route of routes.filter(
        (r) => !r.isPublic && r.method === 'GET' && r.scopes.length === 1,
      )) {
        const res = await send(route.method, concrete(route.path)).set(
          bearer(secretOf(`only-${route.scopes[0]}`)),
        );
        const name = `${route.method} ${route.path}`;
        // past the guard: whatever the route answers, it is not an authorisation failure
        expect({ name, refused: [401, 403].includes(res.status) }).toEqual({
          name,
          refused: false,
        });
      }
    });
  });

  describe('API3 property-level authorisation', () => {
    const count = async (table: string): Promise<number> =>
      Number(
        (
          (await adminQuery(db, db.primaryPort, database, `SELECT count(*) AS n FROM ${table}`))
            .rows[0] as { n: string }
        ).n,
      );

    it.each([
      ['POST /v1/recipes', 'post', '/v1/recipes', 'recipes', () => recipeBody()],
      [
        'POST /v1/users',
        'post',
        '/v1/users',
        'users',
        () => ({ email: `ro${Date.now()}@example.com`, displayName: 'R' }),
      ],
    ] as const)(
      '%s refuses every read-only field by name and writes nothing',
      async (_name, method, url, table, body) => {
        const before = await count(table);
        const readOnly = {
          id: randomUUID(),
          version: 9,
          createdAt: '2020-01-01T00:00:00Z',
          updatedAt: '2020-01-01T00:00:00Z',
          hasEmbedding: true,
        };
        const res = await send(method, url)
          .set(bearer(KEYS.all))
          .send({ ...body(), ...readOnly })
          .expect(400);
        const fields = (res.body as { errors: Array<{ field: string }> }).errors.map(
          (e) => e.field,
        );
        expect(fields.sort()).toEqual(Object.keys(readOnly).sort());
        expect(await count(table)).toBe(before);
      },
    );

    it('names prototype-poisoning keys (raw JSON) beside the other bad fields, and writes nothing', async () => {
      const before = await count('recipes');
      const rest = recipeBody();
      delete rest.title;
      // sent as text: JSON.stringify of an object literal would drop `__proto__`
      const raw =
        `{"title":1,"constructor":{"prototype":{"polluted":1}},"__proto__":{"polluted":1},` +
        JSON.stringify(rest).slice(1);
      const res = await send('POST', '/v1/recipes')
        .set(bearer(KEYS.all))
        .set('content-type', 'application/json')
        .send(raw)
        .expect(400);
      const fields = (res.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field);
      expect([...new Set(fields)].sort()).toEqual(['__proto__', 'constructor', 'title']);
      expect(JSON.stringify(res.body)).toContain('could poison object prototypes');
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
      expect(await count('recipes')).toBe(before);
    });

    it('PATCH cannot set the version or the id of a recipe', async () => {
      const created = await send('POST', '/v1/recipes')
        .set(bearer(KEYS.all))
        .send(recipeBody())
        .expect(201);
      const id = (created.body as { id: string }).id;
      const res = await send('PATCH', `/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .send({ title: 'x', version: 100, id: randomUUID() })
        .expect(400);
      expect(
        (res.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field).sort(),
      ).toEqual(['id', 'version']);
      const read = await send('GET', `/v1/recipes/${id}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(200);
      expect(read.body).toMatchObject({ id, version: 1 });
    });
  });

  describe('API8 security misconfiguration', () => {
    const expectSecurityHeaders = (headers: Record<string, string>, what: string): void => {
      expect({ what, csp: headers['content-security-policy'] }).toEqual({
        what,
        csp: expect.stringContaining("frame-ancestors 'none'"),
      });
      expect({
        what,
        nosniff: headers['x-content-type-options'],
        frame: headers['x-frame-options'],
        hsts: headers['strict-transport-security'],
        referrer: headers['referrer-policy'],
        corp: headers['cross-origin-resource-policy'],
        poweredBy: headers['x-powered-by'],
      }).toEqual({
        what,
        nosniff: 'nosniff',
        frame: 'SAMEORIGIN',
        hsts: 'max-age=31536000; includeSubDomains',
        referrer: 'no-referrer',
        corp: 'same-origin',
        poweredBy: undefined,
      });
    };

    it('sends security headers on answers, errors, probes, the fast path and the docs', async () => {
      const created = await send('POST', '/v1/recipes')
        .set(bearer(KEYS.all))
        .send(recipeBody())
        .expect(201);
      expectSecurityHeaders(created.headers, 'a 201');
      const path = `/v1/recipes/${(created.body as { id: string }).id}`;
      // twice: the second GET may be answered by the cached fast path, before NestJS
      for (const what of ['a GET', 'a cached GET']) {
        const res = await send('GET', path).set(bearer(KEYS.all)).expect(200);
        expectSecurityHeaders(res.headers, what);
        expect(res.headers['content-security-policy']).toContain("default-src 'none'");
      }
      expectSecurityHeaders((await send('GET', '/v1/recipes/x').expect(401)).headers, 'a 401');
      expectSecurityHeaders((await send('GET', '/health/live').expect(200)).headers, 'a probe');
      const docs = await send('GET', '/docs-json').expect(200);
      expectSecurityHeaders(docs.headers, 'the OpenAPI document');
    });

    it('keeps CORS closed by default: no Access-Control-Allow-* for any origin, preflights refused', async () => {
      const simple = await send('GET', '/v1/ops/topology')
        .set(bearer(KEYS.all))
        .set('origin', 'https://evil.example')
        .expect(200);
      expect(simple.headers['access-control-allow-origin']).toBeUndefined();
      const preflight = await request(app.getHttpServer())
        .options('/v1/recipes')
        .set('origin', 'https://evil.example')
        .set('access-control-request-method', 'POST');
      expect(preflight.status).toBeGreaterThanOrEqual(400);
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect(preflight.headers['access-control-allow-methods']).toBeUndefined();
    });

    it('with HTTP_CORS_ORIGINS, answers those origins only', async () => {
      const open = await bootApp(
        testConfig(env, database, {
          HTTP_CORS_ORIGINS: 'https://app.example.com,http://localhost:5173',
        }),
      );
      try {
        const preflight = await request(open.getHttpServer())
          .options('/v1/recipes')
          .set('origin', 'https://app.example.com')
          .set('access-control-request-method', 'POST')
          .set('access-control-request-headers', 'authorization,content-type,idempotency-key')
          .expect(204);
        expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
        expect(preflight.headers['access-control-allow-headers']).toContain('idempotency-key');
        const get = await request(open.getHttpServer())
          .get('/v1/ops/topology')
          .set(bearer(KEYS.all))
          .set('origin', 'http://localhost:5173')
          .expect(200);
        expect(get.headers['access-control-allow-origin']).toBe('http://localhost:5173');
        expect(get.headers['access-control-expose-headers']).toContain('etag');
        const other = await request(open.getHttpServer())
          .get('/v1/ops/topology')
          .set(bearer(KEYS.all))
          .set('origin', 'https://evil.example')
          .expect(200);
        expect(other.headers['access-control-allow-origin']).toBeUndefined();
      } finally {
        await open.close();
      }
    });

    it('refuses a wildcard or a path in HTTP_CORS_ORIGINS at boot', () => {
      for (const value of ['*', 'https://app.example.com/path', 'app.example.com']) {
        expect(() => testConfig(env, database, { HTTP_CORS_ORIGINS: value })).toThrow(
          /HTTP_CORS_ORIGINS/,
        );
      }
    });

    it('errors show no stack, no file path and no internal name, only the documented fields', async () => {
      const answers = [
        await send('GET', '/v1/nothing-here').set(bearer(KEYS.all)),
        await send('POST', '/v1/recipes')
          .set(bearer(KEYS.all))
          .set('content-type', 'application/json')
          .send('{"title": '),
        await send('GET', '/v1/recipes/not-a-uuid').set(bearer(KEYS.all)),
        await send('GET', `/v1/recipes?cursor=${'z'.repeat(40)}`).set(bearer(KEYS.all)),
        await send('GET', '/v1/audit-logs?limit=100000').set(bearer(KEYS.all)),
      ];
      for (const res of answers) {
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        const body = res.body as Record<string, unknown>;
        for (const key of Object.keys(body)) {
          expect(['statusCode', 'error', 'message', 'requestId', 'code', 'errors']).toContain(key);
        }
        expect(typeof body.message).toBe('string');
        const text = JSON.stringify(body);
        expect(text).not.toMatch(
          /\bat \S+ \(|node_modules|\/src\/|\.ts:\d|QueryFailedError|TypeORM|pg_/,
        );
      }
    });
  });
});
