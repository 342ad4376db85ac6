import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createClient, type RedisClientType } from '@keyv/redis';
import type pg from 'pg';
import { stackRedisOptions } from '../../test/support/redis.js';
import { RecipeFactory } from './dataset.js';
import { log, Progress } from './progress.js';
import { benchDatabase } from './paths.js';
import { Rng } from './rng.js';
import {
  clientConfig,
  ensureOwnedDatabase,
  withClient,
  type NodeAddress,
  type StackEnv,
} from './stack.js';

const execFileAsync = promisify(execFile);

/** The cache benchmark's own database; `dbu_bench` (search) and `dbu_test_*` are never touched. */
export const CACHE_BENCH_DB = benchDatabase('BENCH_CACHE_DB', 'dbu_bench_cache');
/** Every Redis key of the service on this database (cache entries, write-behind stream, overlays). */
export const CACHE_KEY_PATTERN = `dbu:${CACHE_BENCH_DB}:*`;

export function cacheDbConfig(
  env: StackEnv,
  node: NodeAddress,
  database = CACHE_BENCH_DB,
): pg.ClientConfig {
  return { ...clientConfig(env, node, database), application_name: 'bench:cache' };
}

/** Creates the database as the schema's owner when missing; true when created. */
export function ensureCacheDatabase(env: StackEnv): Promise<boolean> {
  return ensureOwnedDatabase(env, CACHE_BENCH_DB);
}

/** The project's migration CLI against the bench database. */
export async function migrateCacheDatabase(env: StackEnv, repoDir: string): Promise<void> {
  const cli = path.join(repoDir, 'dist/src/database/migrate.cli.js');
  if (!existsSync(cli)) {
    throw new Error(`${cli} is missing: build first (npm run build)`);
  }
  await execFileAsync(process.execPath, [cli], {
    cwd: repoDir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...env.vars,
      DB_NAME: CACHE_BENCH_DB,
      LOG_LEVEL: 'warn',
    },
    maxBuffer: 16 * 1024 * 1024,
  });
}

const INSERT_BATCH = 1_000;

/**
 * Replaces every recipe with `count` generated ones (no embeddings: GET never returns
 * the vector). One JSON document per batch, expanded by json_to_recordset.
 * Returns the ids in insertion order.
 */
export async function loadRecipes(env: StackEnv, count: number, seed: number): Promise<string[]> {
  return withClient(cacheDbConfig(env, env.primary), async (c) => {
    const factory = new RecipeFactory(new Rng(seed));
    const ids: string[] = [];
    const progress = new Progress('insert recipes', count, 'rows');
    await c.query('BEGIN');
    try {
      await c.query('TRUNCATE recipes CASCADE');
      for (let done = 0; done < count;) {
        const n = Math.min(INSERT_BATCH, count - done);
        const rows = Array.from({ length: n }, () => factory.next());
        await c.query(
          `INSERT INTO recipes (id, title, description, ingredients, steps, cuisine, tags, dietary, total_minutes, author_id)
           SELECT id, title, description, ingredients, steps, cuisine, tags, dietary, "totalMinutes", "authorId"
             FROM json_to_recordset($1::json) AS x(id uuid, title text, description text, ingredients text[],
                  steps text[], cuisine text, tags text[], dietary text[], "totalMinutes" int, "authorId" uuid)`,
          [JSON.stringify(rows)],
        );
        ids.push(...rows.map((r) => r.id));
        done += n;
        progress.update(done);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    }
    progress.done(count);
    await c.query('VACUUM (ANALYZE, FREEZE) recipes');
    return ids;
  });
}

/** Waits until the replica (where the service reads) has replayed the primary's WAL. */
export async function waitForReplica(env: StackEnv, timeoutS = 300): Promise<number> {
  const t0 = performance.now();
  const lsn = await withClient(
    cacheDbConfig(env, env.primary),
    async (c) =>
      (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn,
  );
  return withClient(cacheDbConfig(env, env.replica), async (c) => {
    for (;;) {
      const { rows } = await c.query<{ caught_up: boolean }>(
        'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up',
        [lsn],
      );
      const waited = (performance.now() - t0) / 1000;
      if (rows[0].caught_up) {
        return waited;
      }
      if (waited > timeoutS) {
        throw new Error(`the replica did not replay ${lsn} within ${timeoutS}s`);
      }
      await sleep(200);
    }
  });
}

/** The stack's `docker/stack.sh env` variables (REDIS_URL, its admin ACL user, its CA). */
export type RedisEnv = Record<string, string>;

/** A client as the stack's Redis admin user (the bench flushes its keys, reads INFO). */
export async function withRedis<T>(
  redis: RedisEnv,
  fn: (r: RedisClientType) => Promise<T>,
): Promise<T> {
  const r = createClient(
    stackRedisOptions(redis, { connectTimeout: 5_000, reconnectStrategy: false }),
  ) as RedisClientType;
  r.on('error', (err: Error) => log(`bench redis client: ${err.message}`));
  await r.connect();
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}

/** SCAN + UNLINK of the bench database's keys only (never KEYS, never FLUSHDB). */
export async function flushBenchKeys(redis: RedisEnv): Promise<number> {
  return withRedis(redis, async (r) => {
    let removed = 0;
    for await (const keys of r.scanIterator({ MATCH: CACHE_KEY_PATTERN, COUNT: 1000 })) {
      if (keys.length > 0) {
        removed += await r.unlink(keys);
      }
    }
    return removed;
  });
}

export interface Versions {
  postgres: string;
  redis: string;
  redisPersistence: Record<string, string>;
}

export async function serverVersions(env: StackEnv, redis: RedisEnv): Promise<Versions> {
  const postgres = await withClient(
    cacheDbConfig(env, env.primary),
    async (c) =>
      (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0].v,
  );
  const info = await withRedis(redis, async (r) => ({
    server: await r.info('server'),
    config: {
      appendonly: (await r.configGet('appendonly')).appendonly ?? '?',
      save: (await r.configGet('save')).save ?? '?',
      maxmemoryPolicy: (await r.configGet('maxmemory-policy'))['maxmemory-policy'] ?? '?',
    },
  }));
  return {
    postgres,
    redis: /redis_version:(\S+)/.exec(info.server)?.[1] ?? 'unknown',
    redisPersistence: info.config,
  };
}

/** `bash docker/stack.sh <args>` from the checkout; returns stdout + stderr. */
export async function stack(repoDir: string, ...args: string[]): Promise<string> {
  const { stdout, stderr } = await execFileAsync('bash', ['docker/stack.sh', ...args], {
    cwd: repoDir,
    maxBuffer: 4 * 1024 * 1024,
  });
  return `${stdout}${stderr}`.trim();
}

/**
 * Another user of the stack: the search benchmark, or a jest run (its fault tests
 * stop and kill stack nodes). Its command line, or null.
 */
export async function otherBenchmarkRunning(): Promise<string | null> {
  try {
    const { stdout } = await execFileAsync('pgrep', [
      '-af',
      'dist/bench/search\\.js|node_modules/jest/bin/jest\\.js',
    ]);
    return stdout.trim() || null;
  } catch (err) {
    // pgrep exits 1 when nothing matches
    if ((err as { code?: unknown }).code === 1) {
      return null;
    }
    throw err;
  }
}
