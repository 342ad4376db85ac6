/**
 * Vector-search benchmark: raw SQL through `pg` against the HTTP API, on a data set
 * it builds itself in the `dbu_bench` database of the local stack.
 *
 *   npm run bench:search -- [--rows 100000] [--queries 300] [--duration-s 15] [--skip-load]
 *
 * Progress goes to stderr, the result table to stdout, everything to
 * bench/results/search-<date>.json. See bench/README.md.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { EMBEDDING_DIMENSIONS, HNSW_INDEX } from '../src/recipes/recipes.constants.js';
import { parallelWorkersFor } from '../src/recipes/vector-index.js';
import { COPY_COLUMNS, COPY_HEADER, COPY_TRAILER, encodeRow } from './lib/copy-binary.js';
import {
  DEFAULT_DATASET,
  EmbeddingModel,
  FILTER_CASES,
  RecipeFactory,
  type DatasetParams,
  type FilterCase,
  type SearchFilters,
} from './lib/dataset.js';
import { log, Progress, timed } from './lib/progress.js';
import { Rng } from './lib/rng.js';
import { HttpClient, ServiceProcess, freePort } from './lib/service.js';
import {
  approxSearch,
  buildWhere,
  exactSearch,
  explain,
  isFiltered,
  type Hit,
  type SqlSearchOptions,
} from './lib/sql-search.js';
import {
  BENCH_DB,
  clientConfig,
  loadStackEnv,
  superuserConfig,
  withClient,
  type StackEnv,
} from './lib/stack.js';
import { mean, recallAt, round, summarize, type LatencySummary } from './lib/stats.js';

const execFileAsync = promisify(execFile);
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The migration's definition, used when the index is missing (an interrupted load). */
const HNSW_DEFINITION = `CREATE INDEX ${HNSW_INDEX} ON public.recipes USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')`;
/** Large enough that no distance cut-off reduces recall (cosine distance is at most 2). */
const MAX_DISTANCE = 2;

// ---------------------------------------------------------------------------
// Options

interface Options {
  rows: number;
  queries: number;
  durationS: number;
  skipLoad: boolean;
  skipHttp: boolean;
  seed: number;
  buildMem: string;
  efSearch: number;
  efSweep: number[];
  limit: number;
  maxScanTuples: number;
  warmupQueries: number;
  concurrency: number[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '100000' },
      queries: { type: 'string', default: '300' },
      'duration-s': { type: 'string', default: '15' },
      'skip-load': { type: 'boolean', default: false },
      'skip-http': { type: 'boolean', default: false },
      seed: { type: 'string', default: String(DEFAULT_DATASET.seed) },
      'build-mem': { type: 'string', default: '256MB' },
      'ef-search': { type: 'string', default: '40' },
      'ef-sweep': { type: 'string', default: '64,100,200' },
      limit: { type: 'string', default: '20' },
      'max-scan-tuples': { type: 'string', default: '20000' },
      'warmup-queries': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '1,8' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:search -- [--rows N] [--queries Q] [--duration-s S] [--skip-load] [--skip-http]\n' +
        '  [--seed N] [--build-mem 256MB] [--ef-search 40] [--ef-sweep 64,100,200] [--limit 20]\n' +
        '  [--max-scan-tuples 20000] [--warmup-queries 100] [--concurrency 1,8]\n',
    );
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name} must be an integer in [${min}, ${max}], got '${v}'`);
    }
    return n;
  };
  const list = (name: string, v: string, min: number, max: number): number[] =>
    v.trim() === '' ? [] : v.split(',').map((x) => int(name, x.trim(), min, max));
  if (!/^\d+(kB|MB|GB)$/.test(values['build-mem'])) {
    throw new Error(`--build-mem must look like 256MB or 2GB, got '${values['build-mem']}'`);
  }
  return {
    rows: int('rows', values.rows, 100, 10_000_000),
    queries: int('queries', values.queries, 1, 100_000),
    durationS: int('duration-s', values['duration-s'], 1, 3600),
    skipLoad: values['skip-load'],
    skipHttp: values['skip-http'],
    seed: int('seed', values.seed, 0, 2 ** 31),
    buildMem: values['build-mem'],
    efSearch: int('ef-search', values['ef-search'], 1, 1000),
    efSweep: list('ef-sweep', values['ef-sweep'], 1, 1000),
    limit: int('limit', values.limit, 1, 50),
    maxScanTuples: int('max-scan-tuples', values['max-scan-tuples'], 1, 10_000_000),
    warmupQueries: int('warmup-queries', values['warmup-queries'], 0, 100_000),
    concurrency: list('concurrency', values.concurrency, 1, 256),
  };
}

// ---------------------------------------------------------------------------
// Queries: drawn from the data's distribution, never copies of rows

interface Query {
  literal: string;
  values: number[];
}

function makeQueries(model: EmbeddingModel, seed: number, count: number): Query[] {
  const rng = new Rng(seed);
  const v = new Float32Array(model.params.dims);
  return Array.from({ length: count }, () => {
    model.sample(rng, v);
    // 8 significant digits: what an embedding client sends; SQL and HTTP get the same numbers
    const values = Array.from(v, (x) => Number(x.toPrecision(8)));
    return { values, literal: `[${values.join(',')}]` };
  });
}

// ---------------------------------------------------------------------------
// Database set-up and load

async function ensureDatabase(env: StackEnv): Promise<boolean> {
  return withClient(clientConfig(env, env.primary, 'postgres'), async (c) => {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [BENCH_DB]);
    if (rowCount) {
      return false;
    }
    await c.query(`CREATE DATABASE ${BENCH_DB} TEMPLATE template1`);
    return true;
  });
}

async function migrate(env: StackEnv): Promise<void> {
  const cli = path.join(REPO_DIR, 'dist/src/database/migrate.cli.js');
  if (!existsSync(cli)) {
    throw new Error(`${cli} is missing: build first (npm run build)`);
  }
  await execFileAsync(process.execPath, [cli], {
    cwd: REPO_DIR,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...env.vars,
      DB_NAME: BENCH_DB,
      LOG_LEVEL: 'warn',
    },
    maxBuffer: 16 * 1024 * 1024,
  });
}

interface IndexBuild {
  definition: string;
  seconds: number;
  maintenanceWorkMem: string;
  parallelWorkers: number;
  notices: string[];
}

interface LoadReport {
  loadedAt: string;
  rows: number;
  dataset: DatasetParams;
  generateAndCopyS: number;
  rowsPerS: number;
  analyzeS: number;
  index: IndexBuild;
}

async function ensureMetaTable(c: pg.ClientBase): Promise<void> {
  await c.query(
    `CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
  );
}

async function loadDataset(
  env: StackEnv,
  opts: Options,
  model: EmbeddingModel,
): Promise<LoadReport> {
  const cfg = clientConfig(env, env.primary);
  return withClient(cfg, async (c) => {
    await ensureMetaTable(c);
    await c.query(`DELETE FROM bench_meta WHERE key = 'load'`);
    const existing = await c.query<{ def: string }>(
      `SELECT pg_get_indexdef(to_regclass($1)) AS def WHERE to_regclass($1) IS NOT NULL`,
      [HNSW_INDEX],
    );
    const definition = existing.rows[0]?.def ?? HNSW_DEFINITION;
    log(`dropping ${HNSW_INDEX} for the bulk load (definition kept: ${definition})`);
    await c.query(`DROP INDEX IF EXISTS ${HNSW_INDEX}`);

    // COPY FREEZE into a table truncated in the same transaction: no hint-bit writes
    // (full-page WAL with checksums) on the first reads afterwards.
    const progress = new Progress('generate+COPY', opts.rows, 'rows');
    const dims = model.params.dims;
    async function* payload(): AsyncGenerator<Buffer> {
      yield COPY_HEADER;
      const vecRng = new Rng(opts.seed);
      const factory = new RecipeFactory(new Rng(opts.seed ^ 0x2545f491));
      const v = new Float32Array(dims);
      let batch: Buffer[] = [];
      for (let i = 1; i <= opts.rows; i++) {
        model.sample(vecRng, v);
        batch.push(encodeRow(factory.next(), v));
        if (batch.length === 500 || i === opts.rows) {
          yield Buffer.concat(batch);
          batch = [];
          progress.update(i);
        }
      }
      yield COPY_TRAILER;
    }
    await c.query('BEGIN');
    try {
      await c.query('TRUNCATE recipes CASCADE');
      const copy = c.query(
        copyFrom(
          `COPY recipes (${COPY_COLUMNS.join(', ')}) FROM STDIN WITH (FORMAT binary, FREEZE true)`,
        ),
      );
      await pipeline(Readable.from(payload()), copy);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK');
      throw err;
    }
    const generateAndCopyS = progress.done(opts.rows);
    const [, analyzeS] = await timed(() => c.query('ANALYZE recipes'));
    log(`ANALYZE ${analyzeS.toFixed(1)}s`);

    const index = await buildIndex(env, opts, definition);
    const report: LoadReport = {
      loadedAt: new Date().toISOString(),
      rows: opts.rows,
      dataset: model.params,
      generateAndCopyS: round(generateAndCopyS, 1),
      rowsPerS: Math.round(opts.rows / generateAndCopyS),
      analyzeS: round(analyzeS, 1),
      index,
    };
    await c.query(`INSERT INTO bench_meta (key, value) VALUES ('load', $1)`, [
      JSON.stringify(report),
    ]);
    return report;
  });
}

async function buildIndex(env: StackEnv, opts: Options, definition: string): Promise<IndexBuild> {
  const cfg = clientConfig(env, env.primary);
  const builder = new pg.Client(cfg);
  const monitor = new pg.Client(cfg);
  await builder.connect();
  await monitor.connect();
  const notices: string[] = [];
  builder.on('notice', (n) => {
    notices.push(n.message ?? '(notice without message)');
    log(`index build notice: ${n.message}`);
  });
  try {
    const { rows } = await builder.query<{ pid: number; version: string }>(
      `SELECT pg_backend_pid() AS pid, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS version`,
    );
    const workers = parallelWorkersFor(rows[0].version, 4);
    await builder.query(`SET maintenance_work_mem = '${opts.buildMem}'`);
    await builder.query(`SET max_parallel_maintenance_workers = ${workers}`);
    log(
      `building ${HNSW_INDEX}: maintenance_work_mem ${opts.buildMem}, ${workers} parallel workers (pgvector ${rows[0].version})`,
    );
    const progress = new Progress('index build', opts.rows, 'tuples', 15_000);
    let outcome: { error?: Error } | null = null;
    const t0 = performance.now();
    const build = builder.query(definition).then(
      () => {
        outcome = {};
      },
      (error: unknown) => {
        outcome = { error: error instanceof Error ? error : new Error(String(error)) };
      },
    );
    while (outcome === null) {
      await Promise.race([build, sleep(5_000)]);
      if (outcome === null) {
        const p = await monitor.query<{ phase: string; tuples_done: string }>(
          `SELECT phase, tuples_done FROM pg_stat_progress_create_index WHERE pid = $1`,
          [rows[0].pid],
        );
        if (p.rows[0]) {
          progress.update(Number(p.rows[0].tuples_done));
        }
      }
    }
    const done: { error?: Error } = outcome;
    if (done.error !== undefined) {
      throw done.error;
    }
    const seconds = (performance.now() - t0) / 1000;
    progress.done(opts.rows);
    log(`index built in ${seconds.toFixed(1)}s`);
    return {
      definition,
      seconds: round(seconds, 1),
      maintenanceWorkMem: opts.buildMem,
      parallelWorkers: workers,
      notices,
    };
  } finally {
    await builder.end();
    await monitor.end();
  }
}

async function readLoadReport(env: StackEnv): Promise<LoadReport> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    await ensureMetaTable(c);
    const { rows } = await c.query<{ value: LoadReport }>(
      `SELECT value FROM bench_meta WHERE key = 'load'`,
    );
    const idx = await c.query(`SELECT 1 FROM pg_indexes WHERE indexname = $1`, [HNSW_INDEX]);
    if (!rows[0] || !idx.rowCount) {
      throw new Error(
        `--skip-load: ${BENCH_DB} holds no complete load (run once without --skip-load)`,
      );
    }
    return rows[0].value;
  });
}

// ---------------------------------------------------------------------------
// Facts about the loaded data and the nodes

interface Sizes {
  indexBytes: number;
  tableBytes: number;
  toastBytes: number;
  databaseBytes: number;
}

async function sizes(env: StackEnv): Promise<Sizes> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    const { rows } = await c.query<Record<keyof Sizes, string>>(
      `SELECT pg_relation_size($1::regclass) AS "indexBytes",
              pg_relation_size('recipes') AS "tableBytes",
              pg_relation_size(reltoastrelid) AS "toastBytes",
              pg_database_size(current_database()) AS "databaseBytes"
         FROM pg_class WHERE oid = 'recipes'::regclass`,
      [HNSW_INDEX],
    );
    const r = rows[0];
    return {
      indexBytes: Number(r.indexBytes),
      tableBytes: Number(r.tableBytes),
      toastBytes: Number(r.toastBytes),
      databaseBytes: Number(r.databaseBytes),
    };
  });
}

interface Selectivity {
  matching: number;
  fraction: number;
  target: number;
}

async function selectivities(
  env: StackEnv,
): Promise<{ total: number; byCase: Record<string, Selectivity> }> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    const total = Number(
      (await c.query<{ n: string }>('SELECT count(*) AS n FROM recipes')).rows[0].n,
    );
    const byCase: Record<string, Selectivity> = {};
    for (const fc of FILTER_CASES) {
      const { where, values } = buildWhere(fc.filters, 1);
      const { rows } = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM recipes ${where}`,
        values,
      );
      const matching = Number(rows[0].n);
      byCase[fc.name] = { matching, fraction: round(matching / total, 4), target: fc.target };
    }
    return { total, byCase };
  });
}

async function waitForReplica(env: StackEnv, timeoutS = 600): Promise<number> {
  const t0 = performance.now();
  const lsn = await withClient(
    clientConfig(env, env.primary),
    async (c) =>
      (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn,
  );
  return withClient(clientConfig(env, env.replica), async (c) => {
    for (;;) {
      const { rows } = await c.query<{ caught_up: boolean; behind: string }>(
        `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up,
                pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn())::bigint AS behind`,
        [lsn],
      );
      const waited = (performance.now() - t0) / 1000;
      if (rows[0].caught_up) {
        log(`replica has replayed ${lsn} (waited ${waited.toFixed(1)}s)`);
        return waited;
      }
      if (waited > timeoutS) {
        throw new Error(`the replica did not replay ${lsn} within ${timeoutS}s`);
      }
      log(
        `waiting for the replica to replay ${lsn}: ${(Number(rows[0].behind) / 1048576).toFixed(1)} MiB behind`,
      );
      await sleep(2_000);
    }
  });
}

async function prewarm(
  env: StackEnv,
): Promise<{ method: string; seconds: number; detail: string }> {
  const t0 = performance.now();
  try {
    await withClient(superuserConfig(env, env.primary), (c) =>
      c.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm'),
    );
  } catch (err) {
    const detail = `pg_prewarm not available (${err instanceof Error ? err.message : String(err)}): warm-up queries only`;
    log(detail);
    return { method: 'queries', seconds: 0, detail };
  }
  await waitForReplica(env);
  // toast (the vectors SELECT reads back) into the OS cache first, then heap and
  // index into shared_buffers, index last so it is what stays resident.
  const detail = await withClient(clientConfig(env, env.replica), async (c) => {
    const { rows } = await c.query<{
      toast: string;
      toast_blocks: string;
      heap_blocks: string;
      index_blocks: string;
    }>(
      `SELECT pg_prewarm(reltoastrelid, 'read') AS toast_blocks,
              pg_prewarm('recipes', 'buffer') AS heap_blocks,
              pg_prewarm($1::regclass, 'buffer') AS index_blocks
         FROM pg_class WHERE oid = 'recipes'::regclass`,
      [HNSW_INDEX],
    );
    const r = rows[0];
    return `replica: toast ${r.toast_blocks} blocks read into the OS cache, heap ${r.heap_blocks} and index ${r.index_blocks} blocks into shared_buffers`;
  });
  log(`prewarm: ${detail}`);
  return { method: 'pg_prewarm', seconds: round((performance.now() - t0) / 1000, 1), detail };
}

interface IoSnapshot {
  indexHit: number;
  indexRead: number;
  toastHit: number;
  toastRead: number;
  heapHit: number;
  heapRead: number;
}

async function ioSnapshot(c: pg.ClientBase): Promise<IoSnapshot> {
  const { rows } = await c.query<Record<keyof IoSnapshot, string>>(
    `SELECT i.idx_blks_hit AS "indexHit", i.idx_blks_read AS "indexRead",
            coalesce(t.toast_blks_hit, 0) AS "toastHit", coalesce(t.toast_blks_read, 0) AS "toastRead",
            t.heap_blks_hit AS "heapHit", t.heap_blks_read AS "heapRead"
       FROM pg_statio_user_indexes i JOIN pg_statio_user_tables t ON t.relid = i.relid
      WHERE i.indexrelname = $1`,
    [HNSW_INDEX],
  );
  const r = rows[0];
  return {
    indexHit: Number(r.indexHit),
    indexRead: Number(r.indexRead),
    toastHit: Number(r.toastHit),
    toastRead: Number(r.toastRead),
    heapHit: Number(r.heapHit),
    heapRead: Number(r.heapRead),
  };
}

function hitRatios(before: IoSnapshot, after: IoSnapshot): Record<string, number | null> {
  const ratio = (hit: number, read: number): number | null =>
    hit + read === 0 ? null : round(hit / (hit + read), 4);
  return {
    index: ratio(after.indexHit - before.indexHit, after.indexRead - before.indexRead),
    heap: ratio(after.heapHit - before.heapHit, after.heapRead - before.heapRead),
    toast: ratio(after.toastHit - before.toastHit, after.toastRead - before.toastRead),
  };
}

async function machineInfo(env: StackEnv): Promise<Record<string, unknown>> {
  const node = async (address: typeof env.primary): Promise<Record<string, string>> =>
    withClient(clientConfig(env, address), async (c) => {
      const { rows } = await c.query<Record<string, string>>(
        `SELECT current_setting('server_version') AS "serverVersion",
                (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,
                current_setting('shared_buffers') AS "sharedBuffers",
                current_setting('effective_cache_size') AS "effectiveCacheSize",
                current_setting('work_mem') AS "workMem",
                current_setting('maintenance_work_mem') AS "maintenanceWorkMem",
                current_setting('max_parallel_workers_per_gather') AS "maxParallelWorkersPerGather",
                current_setting('jit') AS jit`,
      );
      return { address: `${address.host}:${address.port}`, ...rows[0] };
    });
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = (
      await execFileAsync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_DIR })
    ).stdout.trim();
  } catch (err) {
    log(`git rev-parse failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    hostname: os.hostname(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: { count: cpus.length, model: cpus[0]?.model, speedMHz: cpus[0]?.speed },
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    commit,
    primary: await node(env.primary),
    replica: await node(env.replica),
    note: 'the load generator, the service and both PostgreSQL nodes share these CPUs',
  };
}

// ---------------------------------------------------------------------------
// Measurements

interface Outcome {
  ids: string[];
  plan?: string;
  tookMs?: number;
}

type Searcher = (q: Query, fc: FilterCase) => Promise<Outcome>;

interface CaseResult {
  latencyMs: LatencySummary;
  recall: number;
  recallMin: number;
  /** queries with all `limit` exact neighbours found */
  perfect: number;
  short: number;
  plans?: Record<string, number>;
  serverTookMs?: LatencySummary;
}

async function measureCase(
  search: Searcher,
  fc: FilterCase,
  queries: Query[],
  truth: Hit[][],
  matching: number,
  limit: number,
  label: string,
): Promise<CaseResult> {
  const latencies: number[] = [];
  const recalls: number[] = [];
  const took: number[] = [];
  const plans: Record<string, number> = {};
  let short = 0;
  const progress = new Progress(label, queries.length, 'queries', 10_000);
  for (let i = 0; i < queries.length; i++) {
    const t0 = performance.now();
    const out = await search(queries[i], fc);
    latencies.push(performance.now() - t0);
    recalls.push(
      recallAt(
        out.ids,
        truth[i].map((h) => h.id),
      ),
    );
    if (out.ids.length < limit && matching >= limit) {
      short++;
    }
    if (out.plan !== undefined) {
      plans[out.plan] = (plans[out.plan] ?? 0) + 1;
    }
    if (out.tookMs !== undefined) {
      took.push(out.tookMs);
    }
    progress.update(i + 1);
  }
  return {
    latencyMs: summarize(latencies),
    recall: round(mean(recalls), 4),
    recallMin: round(Math.min(...recalls), 4),
    perfect: recalls.filter((r) => r === 1).length,
    short,
    ...(Object.keys(plans).length ? { plans } : {}),
    ...(took.length ? { serverTookMs: summarize(took) } : {}),
  };
}

interface ThroughputResult {
  concurrency: number;
  workload: string;
  seconds: number;
  completed: number;
  qps: number;
  latencyMs: LatencySummary;
  distinctQueries: number;
}

/** `concurrency` closed-loop workers for `durationS`, each waiting for its answer. */
async function throughput(
  workers: Array<(q: Query) => Promise<unknown>>,
  pool: Query[],
  durationS: number,
  label: string,
): Promise<ThroughputResult> {
  let next = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + durationS * 1000;
  const progress = new Progress(label, durationS, 's', 5_000);
  await Promise.all(
    workers.map(async (work) => {
      while (performance.now() < end) {
        const q = pool[next++ % pool.length];
        const s = performance.now();
        await work(q);
        latencies.push(performance.now() - s);
        progress.update(Math.round((performance.now() - t0) / 1000));
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return {
    concurrency: workers.length,
    workload: 'unfiltered',
    seconds: round(seconds, 2),
    completed: latencies.length,
    qps: round(latencies.length / seconds, 1),
    latencyMs: summarize(latencies),
    distinctQueries: Math.min(pool.length, latencies.length),
  };
}

interface SideResult {
  cases: Record<string, CaseResult>;
  throughput: ThroughputResult[];
  bufferHitRatio?: Record<string, number | null>;
  notes: string[];
}

async function measureRawSql(
  env: StackEnv,
  opts: Options,
  sets: QuerySets,
  truth: Record<string, Hit[][]>,
  sel: Record<string, Selectivity>,
): Promise<{
  side: SideResult;
  plans: Record<string, { approx: string; exact: string }>;
  sweep: SweepRow[];
}> {
  const sqlOpts: SqlSearchOptions = {
    limit: opts.limit,
    efSearch: opts.efSearch,
    maxScanTuples: opts.maxScanTuples,
  };
  const maxC = Math.max(1, ...opts.concurrency);
  const clients: pg.Client[] = [];
  for (let i = 0; i < maxC; i++) {
    const c = new pg.Client(clientConfig(env, env.replica));
    await c.connect();
    clients.push(c);
  }
  try {
    const c = clients[0];
    const plans: Record<string, { approx: string; exact: string }> = {};
    for (const fc of FILTER_CASES) {
      plans[fc.name] = {
        approx: await explain(c, sets.measured[0].literal, fc.filters, 'approx', sqlOpts),
        exact: await explain(c, sets.measured[0].literal, fc.filters, 'exact', sqlOpts),
      };
      log(`plan ${fc.name}: ${plans[fc.name].approx}  |  exact: ${plans[fc.name].exact}`);
    }
    const search =
      (o: SqlSearchOptions, client = c): Searcher =>
      async (q, fc) => ({
        ids: (await approxSearch(client, q.literal, fc.filters, o)).map((h) => h.id),
      });
    const warm = new Progress(
      'raw SQL warm-up',
      sets.warmup.length * FILTER_CASES.length,
      'queries',
      10_000,
    );
    let n = 0;
    for (const fc of FILTER_CASES) {
      for (const q of sets.warmup) {
        await search(sqlOpts)(q, fc);
        warm.update(++n);
      }
    }
    const before = await ioSnapshot(c);
    const cases: Record<string, CaseResult> = {};
    for (const fc of FILTER_CASES) {
      cases[fc.name] = await measureCase(
        search(sqlOpts),
        fc,
        sets.measured,
        truth[fc.name],
        sel[fc.name].matching,
        opts.limit,
        `raw SQL ${fc.name}`,
      );
    }
    const after = await ioSnapshot(c);
    const runs: ThroughputResult[] = [];
    for (const conc of opts.concurrency) {
      const unfiltered = FILTER_CASES[0];
      runs.push(
        await throughput(
          clients
            .slice(0, conc)
            .map((client) => async (q: Query) => search(sqlOpts, client)(q, unfiltered)),
          sets.throughput,
          opts.durationS,
          `raw SQL throughput c=${conc}`,
        ),
      );
    }
    const sweep: SweepRow[] = [];
    for (const ef of opts.efSweep) {
      for (const fc of FILTER_CASES) {
        const r = await measureCase(
          search({ ...sqlOpts, efSearch: ef }),
          fc,
          sets.measured,
          truth[fc.name],
          sel[fc.name].matching,
          opts.limit,
          `ef_search=${ef} ${fc.name}`,
        );
        sweep.push({
          efSearch: ef,
          case: fc.name,
          recall: r.recall,
          short: r.short,
          p50: r.latencyMs.p50,
          p95: r.latencyMs.p95,
        });
      }
    }
    return {
      side: { cases, throughput: runs, bufferHitRatio: hitRatios(before, after), notes: [] },
      plans,
      sweep,
    };
  } finally {
    for (const client of clients) {
      await client.end();
    }
  }
}

interface SweepRow {
  efSearch: number;
  case: string;
  recall: number;
  short: number;
  p50: number;
  p95: number;
}

interface ApiAnswer {
  items: Array<{ id: string }>;
  tookMs?: number;
  plan?: string;
}

function searchBody(q: Query, filters: SearchFilters, limit: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      embedding: q.values,
      ...(isFiltered(filters) ? { filters } : {}),
      limit,
      maxDistance: MAX_DISTANCE,
    }),
  );
}

async function measureHttp(
  env: StackEnv,
  opts: Options,
  sets: QuerySets,
  truth: Record<string, Hit[][]>,
  sel: Record<string, Selectivity>,
): Promise<{ side: SideResult; bootS: number; port: number }> {
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const service = ServiceProcess.start(
    REPO_DIR,
    {
      ...env.vars,
      NODE_ENV: 'production',
      DB_NAME: BENCH_DB,
      API_KEYS: JSON.stringify([
        {
          id: 'bench',
          hash: createHash('sha256').update(secret, 'utf8').digest('hex'),
          scopes: ['recipes:read'],
        },
      ]),
      RATE_LIMIT_LIMIT: '10000000',
      LOG_LEVEL: 'warn',
      JOBS_ENABLED: 'false',
      DB_MIGRATIONS_RUN: 'false',
      SHUTDOWN_DRAIN_MS: '0',
    },
    port,
  );
  const maxC = Math.max(1, ...opts.concurrency);
  const one = new HttpClient('127.0.0.1', port, 1);
  const many = new HttpClient('127.0.0.1', port, maxC);
  const auth = { authorization: `Bearer ${secret}` };
  try {
    const bootS = await service.waitReady(one, 120_000);
    log(`service ready on :${port} (pid ${service.pid}) after ${bootS.toFixed(1)}s`);
    const call = async (client: HttpClient, body: Buffer): Promise<Outcome> => {
      const res = await client.request('POST', '/v1/recipes/search', body, auth);
      if (res.status !== 200) {
        throw new Error(
          `POST /v1/recipes/search answered ${res.status}: ${res.body.slice(0, 500)}`,
        );
      }
      const answer = JSON.parse(res.body) as ApiAnswer;
      return { ids: answer.items.map((i) => i.id), plan: answer.plan, tookMs: answer.tookMs };
    };
    const bodies = new Map<FilterCase, Buffer[]>(
      FILTER_CASES.map((fc) => [
        fc,
        sets.measured.map((q) => searchBody(q, fc.filters, opts.limit)),
      ]),
    );
    const warm = new Progress(
      'HTTP warm-up',
      sets.warmup.length * FILTER_CASES.length,
      'queries',
      10_000,
    );
    let n = 0;
    for (const fc of FILTER_CASES) {
      for (const q of sets.warmup) {
        await call(one, searchBody(q, fc.filters, opts.limit));
        warm.update(++n);
      }
    }
    const cases: Record<string, CaseResult> = {};
    for (const fc of FILTER_CASES) {
      const caseBodies = bodies.get(fc) ?? [];
      const index = new Map(sets.measured.map((q, i) => [q, i]));
      cases[fc.name] = await measureCase(
        (q) => call(one, caseBodies[index.get(q) ?? 0]),
        fc,
        sets.measured,
        truth[fc.name],
        sel[fc.name].matching,
        opts.limit,
        `HTTP ${fc.name}`,
      );
    }
    const pool = sets.throughput.map((q) => ({ q, body: searchBody(q, {}, opts.limit) }));
    const bodyOf = new Map(pool.map((p) => [p.q, p.body]));
    const runs: ThroughputResult[] = [];
    for (const conc of opts.concurrency) {
      const client = conc === 1 ? one : many;
      runs.push(
        await throughput(
          Array.from(
            { length: conc },
            () => async (q: Query) => call(client, bodyOf.get(q) ?? Buffer.alloc(0)),
          ),
          sets.throughput,
          opts.durationS,
          `HTTP throughput c=${conc}`,
        ),
      );
    }
    return {
      side: {
        cases,
        throughput: runs,
        notes: [
          'keep-alive node:http client in the same process as the raw SQL client, on the same CPUs',
        ],
      },
      bootS: round(bootS, 1),
      port,
    };
  } finally {
    one.close();
    many.close();
    await service.stop();
    log('service stopped');
  }
}

// ---------------------------------------------------------------------------
// Ground truth

async function groundTruth(
  env: StackEnv,
  opts: Options,
  queries: Query[],
): Promise<Record<string, Hit[][]>> {
  // on the primary, so the exact scans do not evict the replica's warmed index
  return withClient(clientConfig(env, env.primary), async (c) => {
    const truth: Record<string, Hit[][]> = {};
    for (const fc of FILTER_CASES) {
      const progress = new Progress(`exact ${fc.name}`, queries.length, 'queries', 10_000);
      truth[fc.name] = [];
      for (const q of queries) {
        truth[fc.name].push(await exactSearch(c, q.literal, fc.filters, opts.limit));
        progress.update(truth[fc.name].length);
      }
      progress.done(queries.length);
    }
    return truth;
  });
}

interface Difficulty {
  meanDistanceNn1: number;
  meanDistanceNnK: number;
  meanDistanceRandom: number;
  relativeContrast: number;
}

/** How separable the neighbours are: the k-th neighbour vs a random row (higher is easier). */
async function difficulty(env: StackEnv, queries: Query[], truth: Hit[][]): Promise<Difficulty> {
  const sample = queries.slice(0, Math.min(20, queries.length));
  const randomDistances = await withClient(clientConfig(env, env.primary), async (c) => {
    const out: number[] = [];
    for (const q of sample) {
      const { rows } = await c.query<{ d: number }>(
        `SELECT avg(embedding <=> $1)::float8 AS d FROM recipes TABLESAMPLE SYSTEM (2) REPEATABLE (7)`,
        [q.literal],
      );
      out.push(rows[0].d);
    }
    return out;
  });
  const nn1 = mean(truth.map((t) => t[0]?.distance ?? Number.NaN));
  const nnK = mean(truth.map((t) => t[t.length - 1]?.distance ?? Number.NaN));
  const rnd = mean(randomDistances);
  return {
    meanDistanceNn1: round(nn1, 4),
    meanDistanceNnK: round(nnK, 4),
    meanDistanceRandom: round(rnd, 4),
    relativeContrast: round(rnd / nnK, 3),
  };
}

// ---------------------------------------------------------------------------
// Output

interface QuerySets {
  measured: Query[];
  warmup: Query[];
  throughput: Query[];
}

interface Target {
  name: string;
  target: string;
  value: string;
  pass: boolean;
}

function evaluateTargets(
  raw: SideResult,
  http: SideResult | null,
  sel: Record<string, Selectivity>,
  limit: number,
): Target[] {
  const targets: Target[] = [];
  const side = http ?? raw;
  const sideName = http ? 'API' : 'raw SQL (API not measured)';
  for (const fc of FILTER_CASES) {
    const r = side.cases[fc.name];
    targets.push({
      name: `${sideName} recall@${limit} ${fc.name}`,
      target: '>= 0.95',
      value: r.recall.toFixed(4),
      pass: r.recall >= 0.95,
    });
    if (sel[fc.name].matching >= limit) {
      targets.push({
        name: `${sideName} full-limit answers ${fc.name}`,
        target: '0 short',
        value: `${r.short} short`,
        pass: r.short === 0,
      });
    }
  }
  if (http) {
    for (const fc of FILTER_CASES) {
      const h = http.cases[fc.name].latencyMs;
      const r = raw.cases[fc.name].latencyMs;
      targets.push({
        name: `API p50 c=1 ${fc.name}`,
        target: '<= 5 ms',
        value: `${h.p50.toFixed(2)} ms`,
        pass: h.p50 <= 5,
      });
      targets.push({
        name: `API p95 c=1 ${fc.name}`,
        target: '<= 15 ms',
        value: `${h.p95.toFixed(2)} ms`,
        pass: h.p95 <= 15,
      });
      const ratio = h.p50 / r.p50;
      targets.push({
        name: `API median / raw SQL median ${fc.name}`,
        target: '<= 1.5',
        value: ratio.toFixed(2),
        pass: ratio <= 1.5,
      });
    }
    const c8 = http.throughput.find((t) => t.concurrency === 8);
    if (c8) {
      targets.push({
        name: 'API throughput c=8',
        target: '>= 300 /s',
        value: `${c8.qps.toFixed(0)} /s`,
        pass: c8.qps >= 300,
      });
    }
  }
  return targets;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function render(report: Report): string {
  const out: string[] = [];
  const sel = report.dataset.selectivity;
  const rows: string[][] = [];
  const sides: Array<[string, SideResult | null]> = [
    ['raw SQL', report.results.rawSql],
    ['HTTP API', report.results.http],
  ];
  for (const [name, side] of sides) {
    if (!side) {
      continue;
    }
    for (const fc of FILTER_CASES) {
      const r = side.cases[fc.name];
      const plans = r.plans
        ? Object.entries(r.plans)
            .map(([k, v]) => `${k}:${v}`)
            .join(' ')
        : report.sqlPlans[fc.name]?.approx.includes(HNSW_INDEX)
          ? 'hnsw'
          : 'no hnsw';
      rows.push([
        name,
        fc.name,
        `${(100 * sel[fc.name].fraction).toFixed(1)} %`,
        r.latencyMs.p50.toFixed(2),
        r.latencyMs.p95.toFixed(2),
        r.latencyMs.p99.toFixed(2),
        r.recall.toFixed(4),
        r.recallMin.toFixed(2),
        String(r.short),
        plans,
      ]);
    }
  }
  out.push(
    `Vector search, ${report.dataset.rows.toLocaleString('en')} rows x ${EMBEDDING_DIMENSIONS} d, ` +
      `${report.parameters.queries} queries per case, limit ${report.parameters.limit}, ef_search ${report.parameters.efSearch}, concurrency 1`,
  );
  out.push(
    table(
      [
        'side',
        'case',
        'rows',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        `recall@${report.parameters.limit}`,
        'min',
        'short',
        'plan',
      ],
      rows,
    ),
  );
  out.push('');
  const tput: string[][] = [];
  for (const [name, side] of sides) {
    for (const t of side?.throughput ?? []) {
      tput.push([
        name,
        String(t.concurrency),
        t.qps.toFixed(0),
        t.latencyMs.p50.toFixed(2),
        t.latencyMs.p95.toFixed(2),
        t.latencyMs.p99.toFixed(2),
        String(t.completed),
      ]);
    }
  }
  out.push(
    `Throughput, unfiltered, ${report.parameters.durationS}s closed loop per row (client shares the ${os.cpus().length} CPUs)`,
  );
  out.push(table(['side', 'c', 'searches/s', 'p50 ms', 'p95 ms', 'p99 ms', 'done'], tput));
  out.push('');
  if (report.efSweep.length) {
    out.push('raw SQL recall by ef_search (c=1)');
    out.push(
      table(
        ['ef_search', 'case', `recall@${report.parameters.limit}`, 'short', 'p50 ms', 'p95 ms'],
        report.efSweep.map((s) => [
          String(s.efSearch),
          s.case,
          s.recall.toFixed(4),
          String(s.short),
          s.p50.toFixed(2),
          s.p95.toFixed(2),
        ]),
      ),
    );
    out.push('');
  }
  const l = report.load;
  out.push(
    `Index ${HNSW_INDEX}: built in ${l.index.seconds}s (maintenance_work_mem ${l.index.maintenanceWorkMem}, ` +
      `${l.index.parallelWorkers} parallel workers${report.parameters.skipLoad ? `, from the load of ${l.loadedAt}` : ''}), ` +
      `${mib(report.sizes.indexBytes)}; heap ${mib(report.sizes.tableBytes)}, toast ${mib(report.sizes.toastBytes)}, ` +
      `database ${mib(report.sizes.databaseBytes)}; shared_buffers ${String(report.machine.replica && (report.machine.replica as Record<string, string>).sharedBuffers)}`,
  );
  if (report.results.rawSql.bufferHitRatio) {
    const h = report.results.rawSql.bufferHitRatio;
    out.push(
      `Replica buffer hit ratio during the raw SQL latency runs: index ${h.index}, heap ${h.heap}, toast ${h.toast}`,
    );
  }
  out.push('');
  out.push('Targets');
  out.push(
    table(
      ['target', 'want', 'got', ''],
      report.targets.map((t) => [t.name, t.target, t.value, t.pass ? 'PASS' : 'FAIL']),
    ),
  );
  return out.join('\n');
}

interface Report {
  benchmark: 'search';
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  parameters: Options & { maxDistance: number; dims: number };
  dataset: {
    rows: number;
    params: DatasetParams;
    selectivity: Record<string, Selectivity>;
    difficulty: Difficulty;
  };
  load: LoadReport;
  sizes: Sizes;
  warmup: { method: string; seconds: number; detail: string };
  sqlPlans: Record<string, { approx: string; exact: string }>;
  results: {
    rawSql: SideResult;
    http: SideResult | null;
    httpSkipped?: string;
    serviceBootS?: number;
  };
  efSweep: SweepRow[];
  targets: Target[];
  phasesS: Record<string, number>;
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const phases: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`--- ${name}`);
    const [result, s] = await timed(fn);
    phases[name] = round(s, 1);
    return result;
  };

  const env = await loadStackEnv(REPO_DIR);
  log(
    `primary ${env.primary.host}:${env.primary.port}, replica ${env.replica.host}:${env.replica.port}, database ${BENCH_DB}`,
  );
  await phase('setup', async () => {
    if (await ensureDatabase(env)) {
      log(`created database ${BENCH_DB}`);
    }
    await migrate(env);
  });

  let load: LoadReport;
  if (opts.skipLoad) {
    load = await readLoadReport(env);
    opts.rows = load.rows;
    opts.seed = load.dataset.seed;
    log(`--skip-load: reusing ${load.rows} rows loaded ${load.loadedAt}`);
  } else {
    const params: DatasetParams = {
      ...DEFAULT_DATASET,
      seed: opts.seed,
      dims: EMBEDDING_DIMENSIONS,
    };
    load = await phase('load', () => loadDataset(env, opts, new EmbeddingModel(params)));
  }
  const model = new EmbeddingModel(load.dataset);
  const sets: QuerySets = {
    measured: makeQueries(model, opts.seed + 1, opts.queries),
    warmup: makeQueries(model, opts.seed + 2, opts.warmupQueries),
    throughput: makeQueries(model, opts.seed + 3, Math.max(opts.queries, 400 * opts.durationS)),
  };
  const sel = await phase('selectivity', () => selectivities(env));
  for (const fc of FILTER_CASES) {
    const s = sel.byCase[fc.name];
    log(
      `${fc.name}: ${s.matching} rows (${(100 * s.fraction).toFixed(2)} %, aimed at ${100 * fc.target} %)`,
    );
  }
  const sz = await sizes(env);
  await phase('replica catch-up', () => waitForReplica(env));
  const truth = await phase('ground truth (exact, primary)', () =>
    groundTruth(env, opts, sets.measured),
  );
  const diff = await difficulty(env, sets.measured, truth[FILTER_CASES[0].name]);
  log(`difficulty: ${JSON.stringify(diff)}`);
  const warmup = await phase('prewarm', () => prewarm(env));
  const raw = await phase('raw SQL', () => measureRawSql(env, opts, sets, truth, sel.byCase));

  let http: Awaited<ReturnType<typeof measureHttp>> | null = null;
  let httpSkipped: string | undefined;
  if (opts.skipHttp) {
    httpSkipped = '--skip-http';
  } else if (!existsSync(path.join(REPO_DIR, 'dist/src/recipes/recipes.controller.js'))) {
    httpSkipped = 'dist/src/recipes/recipes.controller.js is missing: the search API is not built';
  } else {
    http = await phase('HTTP API', () => measureHttp(env, opts, sets, truth, sel.byCase));
  }
  if (httpSkipped) {
    log(`HTTP part skipped: ${httpSkipped}`);
  }

  const report: Report = {
    benchmark: 'search',
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: await machineInfo(env),
    parameters: { ...opts, maxDistance: MAX_DISTANCE, dims: EMBEDDING_DIMENSIONS },
    dataset: { rows: sel.total, params: load.dataset, selectivity: sel.byCase, difficulty: diff },
    load,
    sizes: sz,
    warmup,
    sqlPlans: raw.plans,
    results: {
      rawSql: raw.side,
      http: http?.side ?? null,
      ...(httpSkipped ? { httpSkipped } : {}),
      ...(http ? { serviceBootS: http.bootS } : {}),
    },
    efSweep: raw.sweep,
    targets: evaluateTargets(raw.side, http?.side ?? null, sel.byCase, opts.limit),
    phasesS: phases,
  };
  const dir = path.join(REPO_DIR, 'bench/results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `search-${report.startedAt.slice(0, 10)}.json`);
  await writeFile(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
  process.stdout.write(
    `${render(report)}\n\nphases (s): ${JSON.stringify(phases)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:search failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
