import { Logger, type LoggerService } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createPino, PinoLoggerService } from '../src/common/logger.js';
import { bootApp, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  serviceClient,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

/** Keeps every warn line (the slow-query log is a warn of the `TypeORM` context). */
class CapturingLogger implements LoggerService {
  readonly warnings: unknown[][] = [];
  log(): void {}
  error(): void {}
  warn(...args: unknown[]): void {
    this.warnings.push(args);
  }
  slowQueries(): Array<{ durationMs: number; statement: string; node: string }> {
    return this.warnings
      .filter((a) => a.includes('slow query'))
      .map((a) => a[0] as { durationMs: number; statement: string; node: string });
  }
}

/** DB_SLOW_QUERY_MS: statements slower than the threshold are logged, without parameters. */
describe('slow query log (DB_SLOW_QUERY_MS)', () => {
  let db: StackDb;
  let database: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'slowq');
  });

  afterAll(async () => {
    Logger.overrideLogger(new PinoLoggerService(createPino(process.env.TEST_LOG_LEVEL ?? 'warn')));
    await dropTestDatabase(db, database);
  });

  async function slowQueriesWith(
    threshold: string | undefined,
  ): Promise<{ capture: CapturingLogger; counted: number; nodes: string[] }> {
    const app: NestFastifyApplication = await bootApp(
      testConfig(env, database, threshold === undefined ? {} : { DB_SLOW_QUERY_MS: threshold }),
    );
    const capture = new CapturingLogger();
    try {
      const before = await slowCount(app);
      Logger.overrideLogger(capture);
      await app
        .get(DataSource)
        .query("SELECT pg_sleep(0.3), $1::text AS secret, 'l1teral-secret' AS inline, 4711 AS n", [
          's3cr3t-param',
        ]);
      await app.get(DataSource).query('SELECT 1');
      Logger.overrideLogger(
        new PinoLoggerService(createPino(process.env.TEST_LOG_LEVEL ?? 'warn')),
      );
      return {
        capture,
        counted: (await slowCount(app)) - before,
        nodes: env.DB_NODES.split(','),
      };
    } finally {
      await app.close();
    }
  }

  /** dbu_slow_queries_total summed over nodes, as /metrics shows it. */
  async function slowCount(app: NestFastifyApplication): Promise<number> {
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    return [...res.text.matchAll(/^dbu_slow_queries_total\{[^}]*\} (\S+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  }

  it('logs one line per statement slower than the threshold (duration, normalised SQL, node) and counts it', async () => {
    const { capture, counted, nodes } = await slowQueriesWith('100');
    const slow = capture.slowQueries();
    expect(slow).toHaveLength(1);
    expect(slow[0].durationMs).toBeGreaterThanOrEqual(300);
    // Bound parameters stay $n; literals written into the text become ?.
    expect(slow[0].statement).toBe('SELECT pg_sleep(?), $1::text AS secret, ? AS inline, ? AS n');
    expect(nodes).toContain(slow[0].node);
    const logged = JSON.stringify(capture.warnings);
    expect(logged).not.toContain('s3cr3t-param');
    expect(logged).not.toContain('l1teral-secret');
    expect(logged).not.toContain('4711');
    expect(counted).toBe(1);
  });

  it('stays quiet below the default threshold (2000 ms), and when turned off (0)', async () => {
    for (const threshold of [undefined, '0']) {
      const { capture, counted } = await slowQueriesWith(threshold);
      expect(capture.slowQueries()).toEqual([]);
      expect(counted).toBe(0);
    }
  });

  it("the local stack's auto_explain logs the plan of a statement slower than 2 s", async () => {
    const log = join(env.STACK_DIR, 'logs', 'primary.log');
    const offset = (await readFile(log)).length;
    const client = await serviceClient(db, db.primaryPort, database);
    try {
      await client.query('SELECT pg_sleep(2.2) AS auto_explain_probe');
    } finally {
      await client.end();
    }
    const written = await until(
      async () => (await readFile(log)).subarray(offset).toString('utf8'),
      (text) => text.includes('auto_explain_probe'),
    );
    expect(written).toMatch(/duration: \d+\.\d+ ms\s+plan:/);
    expect(written).toContain('Query Text: SELECT pg_sleep(2.2) AS auto_explain_probe');
  });
});
