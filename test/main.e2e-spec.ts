import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_KEYS_JSON, KEYS } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const PORT = 38123;
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
