import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { redisClient } from './support/redis.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';
import { recipeBody, seededVector } from './support/vectors.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'recipes', 'cli', 'load-recipes.cli.js');

/** The loader prints its result as the last stdout line (logs may come before it). */
function lastJson(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function jsonl(count: number, offset = 0): string {
  return Array.from({ length: count }, (_, i) =>
    JSON.stringify(
      recipeBody({
        id: randomUUID(),
        title: `Bulk ${offset + i}`,
        embedding: seededVector(offset + i + 1),
      }),
    ),
  ).join('\n');
}

describe('bulk JSONL loader (npm run recipes:load)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let dir: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'loader');
    dir = await mkdtemp(join(tmpdir(), 'dbu-loader-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await dropTestDatabase(db, database);
  });

  const runEnv = (): NodeJS.ProcessEnv => ({
    ...process.env,
    ...env,
    DB_NAME: database,
    LOG_LEVEL: 'warn',
  });
  const count = async (): Promise<number> =>
    Number(
      (await adminQuery(db, db.primaryPort, database, `SELECT count(*) AS n FROM recipes`)).rows[0]
        .n,
    );

  it('stops at a bad line naming it, keeps the committed batches, and resumes after the fix', async () => {
    const file = join(dir, 'bad.jsonl');
    const good = jsonl(350).split('\n');
    const broken = [...good];
    broken[249] = JSON.stringify({ ...JSON.parse(good[249]), totalMinutes: -3 });
    await writeFile(file, broken.join('\n'));

    const first = spawnSync(process.execPath, [CLI, file], {
      env: runEnv(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(first.status).toBe(1);
    expect(first.stderr).toContain('line 250');
    expect(first.stderr).toContain('totalMinutes');
    expect(await count()).toBe(200); // two whole batches of 100; the third rolled back entirely
    const checkpoint = JSON.parse(await readFile(`${file}.progress.json`, 'utf8')) as {
      lines: number;
      rows: number;
    };
    expect(checkpoint).toMatchObject({ lines: 200, rows: 200 });

    // Fixing the line changes the file, so the checkpoint no longer matches: the loader
    // starts over, and the upserts by id make the replay of the first 200 harmless.
    await writeFile(file, good.join('\n'));
    const generation = async (): Promise<number> => {
      const redis = await redisClient(env);
      try {
        return Number((await redis.hGet(`dbu:${database}:v1:gen:search_results`, 'gen')) ?? 0);
      } finally {
        await redis.close();
      }
    };
    const before = await generation();
    const second = spawnSync(process.execPath, [CLI, file], {
      env: runEnv(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(second.status).toBe(0);
    expect(lastJson(second.stdout)).toMatchObject({ rows: 350 });
    expect(await count()).toBe(350);
    // Every committed batch moved the search generation on: no cached search result
    // computed before the load is served after it.
    expect(second.stderr).not.toContain('not invalidated');
    expect(await generation()).toBeGreaterThan(before);
  });

  it('resumes after being killed mid-load, without duplicates', async () => {
    const before = await count();
    const file = join(dir, 'kill.jsonl');
    await writeFile(file, jsonl(600, 10_000));
    const child = spawn(process.execPath, [CLI, file, '--batch', '50'], { env: runEnv() });
    // Kill it once at least one batch is committed (its checkpoint exists).
    const deadline = Date.now() + 60_000;
    while (!existsSync(`${file}.progress.json`) && Date.now() < deadline) {
      await sleep(20);
    }
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    const partial = (await count()) - before;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(600);

    const rerun = spawnSync(process.execPath, [CLI, file, '--batch', '50'], {
      env: runEnv(),
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(rerun.status).toBe(0);
    const result = lastJson(rerun.stdout) as { rows: number; resumedFromLine: number };
    expect(result.resumedFromLine).toBeGreaterThan(0);
    expect(result.rows).toBe(600);
    expect((await count()) - before).toBe(600);
  });
});
