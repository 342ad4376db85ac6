import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_KEYS_JSON, KEYS } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const PORT = 23123;
const base = `http://127.0.0.1:${PORT}`;

/** The built service as operators run it: real main.ts, real process, real signals. */
describe('the built service process', () => {
  let db: StackDb;
  let database: string;
  let child: ChildProcess;
  let output = '';

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'main');
    child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'main.js')], {
      env: {
        ...process.env,
        ...env,
        NODE_ENV: 'test',
        DB_NAME: database,
        PORT: String(PORT),
        HOST: '127.0.0.1',
        API_KEYS: API_KEYS_JSON,
        JOBS_ENABLED: 'false',
        SHUTDOWN_DRAIN_MS: '1500',
        LOG_LEVEL: 'info',
      },
    });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/health/live`)).ok) {
          break;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`service did not start:\n${output}`);
      }
      await sleep(200);
    }
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
    }
    await dropTestDatabase(db, database);
  });

  it('serves the Swagger UI and the OpenAPI JSON', async () => {
    const ui = await fetch(`${base}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
    const json = await fetch(`${base}/docs-json`);
    expect(((await json.json()) as { openapi: string }).openapi).toMatch(/^3\./);
  });

  it('logs structured JSON with the request id and never the API key', async () => {
    const res = await fetch(`${base}/v1/ops/topology`, {
      headers: { authorization: `Bearer ${KEYS.opsRead}`, 'x-request-id': 'smoke-req-1' },
    });
    expect(res.status).toBe(200);
    await sleep(200);
    const line = output.split('\n').find((l) => l.includes('"requestId":"smoke-req-1"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({
      level: 'info',
      route: '/v1/ops/topology',
      status: 200,
      keyId: 'test-ops-read',
    });
    expect(output).not.toContain(KEYS.opsRead);
  });

  it('keeps credentials sent in query strings out of responses and access logs', async () => {
    const secret = 'query-string-secret-4711';
    const found = await fetch(`${base}/v1/ops/topology?token=${secret}&api_key=${secret}`, {
      headers: { authorization: `Bearer ${KEYS.opsRead}` },
    });
    expect(found.status).toBe(200);
    const missing = await fetch(`${base}/dashboard/nowhere?token=${secret}`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).not.toContain(secret);
    // a key in the dashboard's URL signs nobody in: the sign-in form, without the value
    const page = await fetch(`${base}/dashboard?token=${secret}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('id="login"');
    expect(html).not.toContain(secret);
    await sleep(200);
    expect(output).toMatch(/"route":"\/v1\/ops\/topology"/);
    expect(output).not.toContain(secret);
  });

  it('on SIGTERM turns readiness to 503, finishes, and exits 0', async () => {
    child.kill('SIGTERM');
    await sleep(300);
    const ready = await fetch(`${base}/health/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { status: string }).status).toBe('shutting_down');
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(output).toContain('shutdown complete');
  });
});

/** Command lines of the live (not zombie) processes of a process group. */
async function processGroup(pgid: number): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') {
        found.push((await readFile(`/proc/${entry}/cmdline`, 'utf8')).replace(/\0/g, ' ').trim());
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** `npm start` as a developer runs it: one signal to npm stops what it started. */
describe('npm start', () => {
  const NPM_PORT = 23125;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    db = stackDb(await stackEnv());
    database = await createTestDatabase(db, 'npmstart');
  });

  afterAll(async () => {
    await dropTestDatabase(db, database);
  });

  it('drains and stops the service on one SIGTERM to the npm process', async () => {
    let output = '';
    const npm = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      // its own process group, so that the clean-up below reaches whatever is left
      detached: true,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        DB_NAME: database,
        PORT: String(NPM_PORT),
        HOST: '127.0.0.1',
        API_KEYS: API_KEYS_JSON,
        JOBS_ENABLED: 'false',
        SHUTDOWN_DRAIN_MS: '500',
        LOG_LEVEL: 'info',
      },
    });
    npm.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    npm.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${NPM_PORT}/health/live`;
    const listening = async (): Promise<boolean> =>
      fetch(url).then(
        (r) => r.ok,
        () => false,
      );
    try {
      const started = Date.now();
      while (!(await listening())) {
        if (npm.exitCode !== null || Date.now() - started > 240_000) {
          throw new Error(`npm start did not serve:\n${output}`);
        }
        await sleep(250);
      }
      expect(await processGroup(npm.pid!)).toEqual(
        expect.arrayContaining([expect.stringMatching(/node .*dist\/src\/main\.js/)]),
      );

      process.kill(npm.pid!, 'SIGTERM');
      const stopped = Date.now();
      while ((await processGroup(npm.pid!)).length > 0 && Date.now() - stopped < 30_000) {
        await sleep(100);
      }
      expect(await processGroup(npm.pid!)).toEqual([]);
      expect(await listening()).toBe(false);
      expect(output).toContain('shutdown complete');
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // the group is gone: nothing was left running
      }
    }
  });
});
