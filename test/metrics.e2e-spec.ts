import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { spawnSync } from 'node:child_process';
import request from 'supertest';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { createTestDatabase, dropTestDatabase, StackDb, stackDb } from './support/databases.js';
import { stackEnv } from './support/stack.js';

describe('/metrics', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'metrics');
    app = await bootApp(testConfig(env, database));
  });

  afterAll(async () => {
    await app?.close();
    await dropTestDatabase(db, database);
  });

  it('is valid Prometheus text (promtool) with process and HTTP duration metrics', async () => {
    await request(app.getHttpServer())
      .get('/v1/ops/topology')
      .set(bearer(KEYS.opsRead))
      .expect(200);
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const text = res.text;
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toMatch(
      /http_request_duration_seconds_count\{[^}]*route="\/v1\/ops\/topology"[^}]*status="200"/,
    );

    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    // promtool exits 1 on parse errors, 3 on lint findings only (e.g. naming advice).
    expect(check.stderr + check.stdout).not.toMatch(
      /error while linting|text format parsing error/,
    );
    expect([0, 3]).toContain(check.status);
  });
});
