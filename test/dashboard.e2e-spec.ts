import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Browser, chromium } from 'playwright-core';
import { API_KEYS_JSON, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';
import { seededVector } from './support/vectors.js';

/** Debian's chromium package (scripts/test.sh installs it when missing). */
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** Kept with the test output (the stack's folder is not versioned). */
const SCREENSHOT = join(REPO_ROOT, '.stack', 'test-output', 'dashboard.png');

/** The little of the DOM the page functions below use (the project compiles without lib dom). */
interface Doc {
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
}

const CHARTS = [
  'requests',
  'request_latency',
  'search_latency',
  'search_recall',
  'cache_hit_rate',
  'pool_utilisation',
  'replication_lag',
];

describe('GET /dashboard: sign-in and live charts, in headless Chromium', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let base: string;
  let browser: Browser;
  const ids: string[] = [];
  let stopTraffic = false;
  let traffic: Promise<number> | null = null;

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  /** Reads, searches and a 404 every 100 ms until stopped: what the charts draw. */
  async function generateTraffic(): Promise<number> {
    const auth = { authorization: `Bearer ${KEYS.all}` };
    let n = 0;
    while (!stopTraffic) {
      const id = ids[n % ids.length];
      const got = await fetch(`${base}/v1/recipes/${id}`, { headers: auth });
      expect(got.status).toBe(200);
      const found = await post('/v1/recipes/search', { embedding: seededVector(n % 7) }, auth);
      expect(found.status).toBe(200);
      n += 1;
      await sleep(100);
    }
    return n;
  }

  beforeAll(async () => {
    expect(CHROMIUM).toBeDefined();
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'dashboard');
    for (let i = 0; i < 12; i += 1) {
      const r = await adminQuery(
        db,
        db.primaryPort,
        database,
        `INSERT INTO recipes (title, cuisine, total_minutes, embedding)
         VALUES ($1, 'thai', $2, $3::vector) RETURNING id::text AS id`,
        [`dashboard recipe ${i}`, 10 + i, JSON.stringify(seededVector(i))],
      );
      ids.push((r.rows[0] as { id: string }).id);
    }
    app = await bootApp(
      testConfig(env, database, {
        API_KEYS: API_KEYS_JSON,
        DASHBOARD_SAMPLE_SECONDS: '1',
        // replication lag comes from the monitoring sampler (this app is its leader)
        MONITORING_DB_SAMPLE_SECONDS: '1',
        VECTOR_RECALL_SAMPLE_RATE: '1',
      }),
    );
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // root in CI: Chromium's sandbox needs an unprivileged user
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  }, 120_000);

  afterAll(async () => {
    stopTraffic = true;
    await traffic;
    await browser?.close();
    await app?.close();
    if (database) {
      await dropTestDatabase(db, database);
    }
  });

  it('sign-in: 400 naming the field, 401 for an unknown key, 403 without ops:read, then an HttpOnly SameSite=Strict cookie', async () => {
    const empty = await post('/dashboard/login', {});
    expect(empty.status).toBe(400);
    expect(JSON.stringify(await empty.json())).toContain('key');
    const wrong = await post('/dashboard/login', { key: 'not-a-key' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const noScope = await post('/dashboard/login', { key: KEYS.none });
    expect(noScope.status).toBe(403);
    expect(noScope.headers.get('set-cookie')).toBeNull();

    const ok = await post('/dashboard/login', { key: KEYS.opsRead });
    expect(ok.status).toBe(204);
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^dbu_session=test-ops-read\.\d+\.[0-9a-f]{64}; /);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/dashboard');
    expect(cookie).toContain('Max-Age=28800');
    expect(cookie).not.toContain(KEYS.opsRead);
    const session = cookie.split(';')[0];

    const data = await fetch(`${base}/dashboard/data`, { headers: { cookie: session } });
    expect(data.status).toBe(200);
    const view = (await data.json()) as { charts: Array<{ id: string }> };
    expect(view.charts.map((c) => c.id)).toEqual(CHARTS);
    // the cookie opens the dashboard only, not the API
    const api = await fetch(`${base}/v1/ops/topology`, { headers: { cookie: session } });
    expect(api.status).toBe(401);
    // a key in the URL opens nothing
    expect((await fetch(`${base}/dashboard/data?token=${KEYS.opsRead}`)).status).toBe(401);
    expect((await fetch(`${base}/dashboard/data`)).status).toBe(401);
    const forged = session.replace(/\.(\d+)\./, (_, t: string) => `.${Number(t) + 1}.`);
    expect((await fetch(`${base}/dashboard/data`, { headers: { cookie: forged } })).status).toBe(
      401,
    );
    expect(
      (
        await fetch(`${base}/dashboard/data`, {
          headers: { authorization: `Bearer ${KEYS.none}` },
        })
      ).status,
    ).toBe(403);

    const page = await fetch(`${base}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('id="login"');
    expect((await fetch(`${base}/dashboard/assets/uPlot.iife.min.js`)).status).toBe(200);
    expect((await fetch(`${base}/dashboard/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  it('in the browser: a wrong key is refused; the right one draws every chart with data, no console error; sign-out ends it', async () => {
    traffic = generateTraffic();
    const context = await browser.newContext({ viewport: { width: 1400, height: 1200 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      // the failed sign-ins below answer 401/403 on purpose; Chromium logs those loads
      if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) {
        errors.push(`${m.text()} (${m.location().url})`);
      }
    });
    page.on('pageerror', (e) => errors.push(e.message));

    await page.goto(`${base}/dashboard`);
    await page.fill('#key', 'not-a-key');
    await page.click('button[type=submit]');
    await page.waitForSelector('#login-error:not([hidden])');
    expect(await page.textContent('#login-error')).toContain('unknown API key');
    await page.fill('#key', KEYS.none);
    await page.click('button[type=submit]');
    await page.waitForFunction(() =>
      (globalThis as unknown as { document: Doc }).document
        .getElementById('login-error')
        ?.textContent?.includes('lacks scope ops:read'),
    );
    expect(await context.cookies()).toEqual([]);

    await page.fill('#key', KEYS.opsRead);
    await page.click('button[type=submit]');
    await page.waitForSelector('#logout');
    expect(page.url()).toBe(`${base}/dashboard`);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'dbu_session', httpOnly: true, sameSite: 'Strict' });

    // every chart has drawn points (its draw hook counts the non-null values it drew)
    await page.waitForFunction(
      (charts) =>
        charts.every(
          (id) =>
            Number(
              (globalThis as unknown as { document: Doc }).document
                .querySelector(`[data-chart="${id}"]`)
                ?.getAttribute('data-points'),
            ) > 0,
        ),
      CHARTS,
      { timeout: 60_000, polling: 250 },
    );
    const drawn = await page.$$eval('[data-chart]', (els) =>
      els.map((e) => ({
        id: e.getAttribute('data-chart'),
        canvas: e.querySelector('canvas') !== null,
      })),
    );
    expect(drawn).toEqual(CHARTS.map((id) => ({ id, canvas: true })));
    expect(await page.textContent('#backups')).toContain('last good backup');
    await mkdir(join(REPO_ROOT, '.stack', 'test-output'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect((await stat(SCREENSHOT)).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);

    await page.click('#logout');
    await page.waitForSelector('#login');
    expect(await context.cookies()).toEqual([]);
    const status = await page.evaluate(async () => (await fetch('/dashboard/data')).status);
    expect(status).toBe(401);
    await context.close();

    stopTraffic = true;
    expect(await traffic).toBeGreaterThan(0);
  }, 120_000);
});
