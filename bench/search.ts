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
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { EnvironmentVariables } from '../src/config/env.schema.js';
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
import { metricSum, parseMetrics } from './lib/cache-workload.js';
import { hostInfo } from './lib/machine.js';
import {
  parseAbOnly,
  renderMonitoringAb,
  runMonitoringAb,
  type AbComparison,
  type AbComponent,
  type AbService,
  type MonitoringAbReport,
} from './lib/monitoring-ab.js';
import { tlsComparison } from './lib/tls-ab.js';
import { incrementalStudy, type IncrementalReport, type WriteSide } from './lib/incremental.js';
import { log, Progress, timed } from './lib/progress.js';
import { runBench, writeReport } from './lib/paths.js';
import { Rng } from './lib/rng.js';
import {
  HttpClient,
  ServiceProcess,
  freePort,
  medianStages,
  parseServerTiming,
} from './lib/service.js';
import {
  buildWhere,
  exactSearch,
  explain,
  isFiltered,
  search as sqlSearch,
  type Hit,
  type SqlSearchOptions,
} from './lib/sql-search.js';
import {
  BENCH_DB,
  clientConfig,
  connect,
  ensureOwnedDatabase,
  loadStackEnv,
  ownerConfig,
  superuserConfig,
  withClient,
  type StackEnv,
} from './lib/stack.js';
import { mean, recallAt, round, summarize, type LatencySummary } from './lib/stats.js';
import { table, targetsTable, type Target } from './lib/text-table.js';
import { vectorParam } from '../src/recipes/vector-param.js';
import { indexColumn, VECTOR_STORAGES, type VectorStorage } from '../src/recipes/vector-storage.js';
import { InMemoryTable } from './lib/exact-memory.js';
import { loaderVsCopy } from './lib/loader-vs-copy.js';

/** search's tables keep their first two columns left-aligned. */
const table2 = (headers: string[], rows: string[][]): string => table(headers, rows, 2);

const execFileAsync = promisify(execFile);
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The migration's definition, used when the index is missing (an interrupted load). */
const HNSW_DEFINITION = `CREATE INDEX ${HNSW_INDEX} ON public.recipes USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')`;

/** The index definition with `ef_construction` set to `ef` (added when the definition has none). */
export function withEfConstruction(definition: string, ef: number): string {
  if (/ef_construction\s*=\s*'?\d+'?/.test(definition)) {
    return definition.replace(/ef_construction\s*=\s*'?\d+'?/, `ef_construction='${ef}'`);
  }
  return definition.replace(/WITH \(/, `WITH (ef_construction='${ef}', `);
}
/** The index definition with the column part of `storage` (vector-storage.ts). */
export function withStorage(definition: string, storage: VectorStorage): string {
  return definition.replace(
    /USING hnsw \(.*\) WITH \(/,
    `USING hnsw (${indexColumn(storage)}) WITH (`,
  );
}
/** The service's defaults for every VECTOR_* knob (src/config/env.schema.ts). */
const SERVICE = new EnvironmentVariables();
/** The recipe columns' generator is seeded from the data seed with this (load and regeneration). */
const FACTORY_SEED_XOR = 0x2545f491;
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
  /** `ef_construction` of the index build (the service's VECTOR_EF_CONSTRUCTION) */
  efConstruction: number;
  /** `--rebuild-index`: with --skip-load, build the index anew (an independent build) */
  rebuildIndex: boolean;
  /** what the index holds (the service's VECTOR_STORAGE) */
  storage: VectorStorage;
  /** ground truth by exact scans in PostgreSQL, or in memory from the regenerated rows */
  truth: 'sql' | 'memory';
  /** `--regime incremental`: bench/lib/incremental.ts instead of the bulk-built measurements */
  regime: 'bulk' | 'incremental' | 'loader';
  secondRows: number;
  deleteShare: number;
  efSearch: number;
  efPerResult: number;
  efSweep: number[];
  limit: number;
  maxScanTuples: number;
  exactMaxRows: number;
  timeoutMs: number;
  warmupQueries: number;
  concurrency: number[];
  tag: string;
  /** extra VAR=value settings for the service under test, e.g. VECTOR_RECALL_SAMPLE_RATE=0 */
  serviceEnv: Record<string, string>;
  monitoringAb: boolean;
  /** `--tls-ab`: the same A/B with TLS off versus on (issue 13) */
  tlsAb: boolean;
  abRounds: number;
  /**
   * `--paired-rounds N` (issue 14 target 1): raw SQL and the API measured alternately in
   * the same minutes, query by query (latency) and in N rotated throughput rounds at the
   * highest concurrency, so drift between phases cannot pass for overhead; 0: off
   */
  pairedRounds: number;
  /** `--paired-round-s S`: the length of each side's turn in a paired throughput round */
  pairedRoundS: number;
  /** `--server-timing`: the service answers with Server-Timing; the paired phase and the incremental regime's phases report its stages */
  serverTiming: boolean;
  /** `--ab-paired`: both sides at once in every round, sharing the service's CPU(s) */
  abPaired: boolean;
  abIdleS: number;
  abWarmupS: number;
  abCloudwatchIntervalS: number;
  abOnly: AbComponent | null;
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
      'build-mem': { type: 'string', default: SERVICE.VECTOR_MAINTENANCE_WORK_MEM },
      'ef-construction': { type: 'string', default: String(SERVICE.VECTOR_EF_CONSTRUCTION) },
      'rebuild-index': { type: 'boolean', default: false },
      storage: { type: 'string', default: SERVICE.VECTOR_STORAGE },
      truth: { type: 'string', default: 'sql' },
      regime: { type: 'string', default: 'bulk' },
      'second-rows': { type: 'string', default: '20000' },
      'delete-share': { type: 'string', default: '0.3' },
      'ef-search': { type: 'string', default: String(SERVICE.VECTOR_EF_SEARCH) },
      'ef-per-result': { type: 'string', default: String(SERVICE.VECTOR_EF_SEARCH_PER_RESULT) },
      'ef-sweep': { type: 'string', default: '40,120,200' },
      limit: { type: 'string', default: '20' },
      'max-scan-tuples': { type: 'string', default: String(SERVICE.VECTOR_MAX_SCAN_TUPLES) },
      'exact-max-rows': { type: 'string', default: String(SERVICE.VECTOR_EXACT_MAX_ROWS) },
      'timeout-ms': { type: 'string', default: String(SERVICE.VECTOR_QUERY_TIMEOUT_MS) },
      'warmup-queries': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '1,8' },
      tag: { type: 'string', default: '' },
      'service-env': { type: 'string', multiple: true, default: [] },
      'monitoring-ab': { type: 'boolean', default: false },
      'tls-ab': { type: 'boolean', default: false },
      'ab-rounds': { type: 'string', default: '8' },
      'paired-rounds': { type: 'string', default: '6' },
      'paired-round-s': { type: 'string', default: '5' },
      'server-timing': { type: 'boolean', default: false },
      'ab-paired': { type: 'boolean', default: false },
      'ab-idle-s': { type: 'string', default: '20' },
      'ab-warmup-s': { type: 'string', default: '5' },
      'ab-cloudwatch-interval-s': { type: 'string', default: '5' },
      'ab-only': { type: 'string', default: 'all' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:search -- [--rows N] [--queries Q] [--duration-s S] [--skip-load] [--skip-http]\n' +
        '  [--regime bulk|incremental [--second-rows 20000] [--delete-share 0.3]] (incremental: queries = --queries per case)\n' +
        '  [--regime loader [--second-rows N]] (npm run recipes:load against COPY into the loaded table, index in place)\n' +
        '  [--seed N] [--build-mem 1GB] [--ef-construction N] [--rebuild-index] [--ef-search N] [--ef-per-result N] [--ef-sweep 40,120,200]\n' +
        '  [--storage vector|halfvec (the index; VECTOR_STORAGE)] [--truth sql|memory (exact answers by SQL scans, or in memory from the regenerated rows)]\n' +
        '  [--limit 20] (search knobs default to the service defaults, and are passed to it)\n' +
        '  [--max-scan-tuples 20000] [--exact-max-rows 2000] [--timeout-ms 3000] [--warmup-queries 100]\n' +
        '  [--concurrency 1,8] [--tag NAME (results file search-<date>-NAME.json)]\n' +
        '  [--service-env VAR=value (repeatable; e.g. VECTOR_RECALL_SAMPLE_RATE=0)]\n' +
        "  [--paired-rounds 6] [--paired-round-s 5] [--server-timing (HTTP_SERVER_TIMING on: the service's stages per paired search and incremental phase)]\n" +
        '  [--monitoring-ab [--ab-rounds 8] [--ab-paired] [--ab-idle-s 20] [--ab-warmup-s 5] [--ab-cloudwatch-interval-s 5]\n' +
        '    [--ab-only all|sampler|insights|dashboard|alerting|cloudwatch]]\n' +
        '  [--tls-ab (the same rounds with TLS off versus on; needs STACK_TLS_ONLY=0 bash docker/stack.sh up)]\n',
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
  if (!/^[a-z0-9-]{0,40}$/.test(values.tag)) {
    throw new Error(`--tag must be lowercase letters, digits and dashes, got '${values.tag}'`);
  }
  if (values['rebuild-index'] && !values['skip-load']) {
    throw new Error('--rebuild-index goes with --skip-load (a load always builds the index)');
  }
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
    efConstruction: int('ef-construction', values['ef-construction'], 32, 1000),
    rebuildIndex: values['rebuild-index'],
    storage: oneOf('storage', values.storage, VECTOR_STORAGES),
    truth: oneOf('truth', values.truth, ['sql', 'memory'] as const),
    regime: parseRegime(values.regime),
    secondRows: int('second-rows', values['second-rows'], 100, 1_000_000),
    deleteShare: share(values['delete-share']),
    efSearch: int('ef-search', values['ef-search'], 1, 1000),
    efPerResult: int('ef-per-result', values['ef-per-result'], 1, 20),
    efSweep: list('ef-sweep', values['ef-sweep'], 1, 1000),
    limit: int('limit', values.limit, 1, 50),
    maxScanTuples: int('max-scan-tuples', values['max-scan-tuples'], 1, 10_000_000),
    exactMaxRows: int('exact-max-rows', values['exact-max-rows'], 0, 10_000_000),
    timeoutMs: int('timeout-ms', values['timeout-ms'], 10, 600_000),
    warmupQueries: int('warmup-queries', values['warmup-queries'], 0, 100_000),
    concurrency: list('concurrency', values.concurrency, 1, 256),
    tag: values.tag,
    serviceEnv: Object.fromEntries(
      values['service-env'].map((kv) => {
        const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(kv);
        if (!m) {
          throw new Error(`--service-env must look like VAR=value, got '${kv}'`);
        }
        return [m[1], m[2]];
      }),
    ),
    monitoringAb: values['monitoring-ab'],
    tlsAb: values['tls-ab'],
    abRounds: int('ab-rounds', values['ab-rounds'], 2, 64),
    pairedRounds: int('paired-rounds', values['paired-rounds'], 0, 64),
    pairedRoundS: int('paired-round-s', values['paired-round-s'], 1, 600),
    serverTiming: values['server-timing'],
    abPaired: values['ab-paired'],
    abIdleS: int('ab-idle-s', values['ab-idle-s'], 0, 3600),
    abWarmupS: int('ab-warmup-s', values['ab-warmup-s'], 0, 3600),
    abCloudwatchIntervalS: int(
      'ab-cloudwatch-interval-s',
      values['ab-cloudwatch-interval-s'],
      1,
      3600,
    ),
    abOnly: parseAbOnly(values['ab-only']),
  };
}

function oneOf<T extends string>(name: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) {
    throw new Error(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  }
  return v as T;
}

function parseRegime(v: string): Options['regime'] {
  return oneOf('regime', v, ['bulk', 'incremental', 'loader'] as const);
}

function share(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n >= 1) {
    throw new Error(`--delete-share must be a number in [0, 1) (0: no delete phases), got '${v}'`);
  }
  return n;
}

/** What the service sets hnsw.ef_search to (src/recipes/search.service.ts `tuning`). */
function effectiveEf(o: Pick<Options, 'efSearch' | 'efPerResult' | 'limit'>): number {
  return Math.max(o.efSearch, o.limit * o.efPerResult);
}

/** The raw SQL side's search: the service's knobs, no distance cut-off. */
function sqlSearchOptions(opts: Options): SqlSearchOptions {
  return {
    limit: opts.limit,
    efSearch: effectiveEf(opts),
    maxScanTuples: opts.maxScanTuples,
    exactMaxRows: opts.exactMaxRows,
    timeoutMs: opts.timeoutMs,
    maxDistance: MAX_DISTANCE,
    storage: opts.storage,
  };
}

// ---------------------------------------------------------------------------
// Queries: drawn from the data's distribution, never copies of rows

interface Query {
  /** `[x1,...,x1536]`: a pgvector literal and a JSON array at once */
  literal: string;
  /** The same numbers as the service binds them (pgvector's binary format). */
  param: Buffer;
}

function makeQueries(model: EmbeddingModel, seed: number, count: number): Query[] {
  const rng = new Rng(seed);
  const v = new Float32Array(model.params.dims);
  return Array.from({ length: count }, () => {
    model.sample(rng, v);
    // 8 significant digits: what an embedding client sends; SQL and HTTP get the same numbers
    const numbers = Array.from(v, (x) => Number(x.toPrecision(8)));
    return { literal: `[${numbers.join(',')}]`, param: vectorParam(numbers) };
  });
}

// ---------------------------------------------------------------------------
// Database set-up and load

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

/** Made by the owner (the service's role cannot create tables); the schema's default privileges give it to the service. */
async function ensureMetaTable(env: StackEnv): Promise<void> {
  await withClient(ownerConfig(env, env.primary), (c) =>
    c.query(
      `CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
    ),
  );
}

async function loadDataset(
  env: StackEnv,
  opts: Options,
  model: EmbeddingModel,
): Promise<LoadReport> {
  const cfg = clientConfig(env, env.primary);
  return withClient(cfg, async (c) => {
    await ensureMetaTable(env);
    await c.query(`DELETE FROM bench_meta WHERE key = 'load'`);
    const existing = await c.query<{ def: string }>(
      `SELECT pg_get_indexdef(to_regclass($1)) AS def WHERE to_regclass($1) IS NOT NULL`,
      [HNSW_INDEX],
    );
    const definition = withStorage(
      withEfConstruction(existing.rows[0]?.def ?? HNSW_DEFINITION, opts.efConstruction),
      opts.storage,
    );
    log(`dropping ${HNSW_INDEX} for the bulk load (definition kept: ${definition})`);
    await c.query(`DROP INDEX IF EXISTS ${HNSW_INDEX}`);

    // COPY FREEZE into a table truncated in the same transaction: no hint-bit writes
    // (full-page WAL with checksums) on the first reads afterwards.
    const progress = new Progress('generate+COPY', opts.rows, 'rows');
    const dims = model.params.dims;
    async function* payload(): AsyncGenerator<Buffer> {
      yield COPY_HEADER;
      const vecRng = new Rng(opts.seed);
      const factory = new RecipeFactory(new Rng(opts.seed ^ FACTORY_SEED_XOR));
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
  // CREATE INDEX needs CREATE on the schema, which the service's role has not: the
  // owner builds it (a member of the service's role, which owns recipes and the index).
  const builder = await connect(ownerConfig(env, env.primary));
  const monitor = await connect(clientConfig(env, env.primary));
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

/** `--skip-load --rebuild-index`: the same rows, a new (independent) build of the index. */
async function rebuildIndex(env: StackEnv, opts: Options, load: LoadReport): Promise<LoadReport> {
  const definition = withStorage(
    withEfConstruction(load.index.definition, opts.efConstruction),
    opts.storage,
  );
  await withClient(clientConfig(env, env.primary), (c) =>
    c.query(`DROP INDEX IF EXISTS ${HNSW_INDEX}`),
  );
  const index = await buildIndex(env, opts, definition);
  const report: LoadReport = { ...load, index };
  await withClient(clientConfig(env, env.primary), (c) =>
    c.query(`UPDATE bench_meta SET value = $1, updated_at = now() WHERE key = 'load'`, [
      JSON.stringify(report),
    ]),
  );
  return report;
}

async function readLoadReport(env: StackEnv): Promise<LoadReport> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    await ensureMetaTable(env);
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

/**
 * Buffer counters of the replica. Backends flush their statistics at most once a
 * second when idle: wait, then read them from a fresh connection.
 */
async function ioSnapshot(env: StackEnv): Promise<IoSnapshot> {
  await sleep(1_500);
  return withClient(clientConfig(env, env.replica), (c) => readIo(c));
}

async function readIo(c: pg.ClientBase): Promise<IoSnapshot> {
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
  return {
    ...(await hostInfo(REPO_DIR)),
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
  /** The service's Server-Timing stages in ms (`--server-timing`). */
  stages?: Record<string, number>;
}

type Searcher = (q: Query, fc: FilterCase) => Promise<Outcome>;

interface CaseResult {
  latencyMs: LatencySummary;
  recall: number;
  recallMin: number;
  /** queries with all `limit` exact neighbours found */
  perfect: number;
  /** queries that found fewer than half of their exact neighbours */
  missed: number;
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
    missed: recalls.filter((r) => r < 0.5).length,
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
  /** searches that re-used a query already sent in this phase (pool exhausted) */
  repeats: number;
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
  const seconds = progress.done(durationS);
  return {
    concurrency: workers.length,
    workload: 'unfiltered',
    seconds: round(seconds, 2),
    completed: latencies.length,
    qps: round(latencies.length / seconds, 1),
    latencyMs: summarize(latencies),
    repeats: Math.max(0, latencies.length - pool.length),
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
  plans: Record<string, { search: string; escalated: string; exact: string }>;
  sweep: SweepRow[];
}> {
  const sqlOpts = sqlSearchOptions(opts);
  const maxC = Math.max(1, ...opts.concurrency);
  const clients: pg.Client[] = [];
  for (let i = 0; i < maxC; i++) {
    const c = await connect(clientConfig(env, env.replica));
    clients.push(c);
  }
  try {
    const c = clients[0];
    const plans: Record<string, { search: string; escalated: string; exact: string }> = {};
    for (const fc of FILTER_CASES) {
      plans[fc.name] = {
        search: await explain(c, sets.measured[0].literal, fc.filters, 'search', sqlOpts),
        // the witness check's second attempt: the planner must still take the index
        escalated: await explain(c, sets.measured[0].literal, fc.filters, 'search', {
          ...sqlOpts,
          efSearch: Math.max(sqlOpts.efSearch, SERVICE.VECTOR_ESCALATION_EF_SEARCH),
        }),
        exact: await explain(c, sets.measured[0].literal, fc.filters, 'exact', sqlOpts),
      };
      log(`plan ${fc.name}: ${plans[fc.name].search}  |  ground truth: ${plans[fc.name].exact}`);
    }
    const search =
      (o: SqlSearchOptions, client = c): Searcher =>
      async (q, fc) => {
        const r = await sqlSearch(client, q.param, fc.filters, o);
        return { ids: r.hits.map((h) => h.id), plan: r.plan };
      };
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
    const before = await ioSnapshot(env);
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
    const after = await ioSnapshot(env);
    const runs: ThroughputResult[] = [];
    for (const [i, conc] of opts.concurrency.entries()) {
      const unfiltered = FILTER_CASES[0];
      runs.push(
        await throughput(
          clients
            .slice(0, conc)
            .map((client) => async (q: Query) => search(sqlOpts, client)(q, unfiltered)),
          sets.throughput[i],
          opts.durationS,
          `raw SQL throughput c=${conc}`,
        ),
      );
    }
    const sweep: SweepRow[] = [];
    for (const ef of opts.efSweep) {
      for (const fc of FILTER_CASES) {
        const r = await measureCase(
          search({ ...sqlOpts, efSearch: ef, exactMaxRows: 0 }),
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
          missed: r.missed,
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
  missed: number;
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
  const rest = JSON.stringify({
    ...(isFiltered(filters) ? { filters } : {}),
    limit,
    maxDistance: MAX_DISTANCE,
  });
  return Buffer.from(`{"embedding":${q.literal},${rest.slice(1)}`);
}

/** The service's settings for the HTTP side (and each --monitoring-ab round). */
function httpServiceEnv(
  env: StackEnv,
  opts: Options,
  secret: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
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
    // a fresh cache namespace per run: results cached by an earlier run (same seeded
    // queries) must not be served from Redis
    CACHE_KEY_VERSION: `b${Date.now().toString(36)}`,
    // the raw SQL side's knobs, so both sides run the same search
    VECTOR_EF_SEARCH: String(opts.efSearch),
    VECTOR_EF_SEARCH_PER_RESULT: String(opts.efPerResult),
    VECTOR_MAX_SCAN_TUPLES: String(opts.maxScanTuples),
    VECTOR_EXACT_MAX_ROWS: String(opts.exactMaxRows),
    VECTOR_QUERY_TIMEOUT_MS: String(opts.timeoutMs),
    VECTOR_STORAGE: opts.storage,
    ...(opts.serverTiming ? { HTTP_SERVER_TIMING: 'true' } : {}),
    ...opts.serviceEnv,
    ...extra,
  };
}

async function measureHttp(
  env: StackEnv,
  opts: Options,
  sets: QuerySets,
  truth: Record<string, Hit[][]>,
  sel: Record<string, Selectivity>,
): Promise<{
  side: SideResult;
  bootS: number;
  port: number;
  healthLiveMs: LatencySummary;
  paired: PairedResult | null;
}> {
  // NOTE: a concurrent `nest build` empties dist/ for a few seconds; wait it out
  const main = path.join(REPO_DIR, 'dist/src/main.js');
  let waited = 0;
  while (!existsSync(main)) {
    if (++waited > 120) {
      throw new Error(`${main} is missing (build the service first)`);
    }
    await sleep(1_000);
  }
  if (waited > 0) {
    log(`waited ${waited}s for dist/src/main.js (a build was running); letting it finish`);
    await sleep(10_000);
  }
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const service = ServiceProcess.start(REPO_DIR, httpServiceEnv(env, opts, secret), port);
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
      return {
        ids: answer.items.map((i) => i.id),
        plan: answer.plan,
        tookMs: answer.tookMs,
        stages: opts.serverTiming ? parseServerTiming(res.headers['server-timing']) : undefined,
      };
    };
    // the HTTP floor: a route with no database work, same client and connection
    const floor: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await one.request('GET', '/health/live');
      floor.push(performance.now() - t0);
    }
    const healthLiveMs = summarize(floor.slice(50));
    log(`GET /health/live: p50 ${healthLiveMs.p50} ms, p95 ${healthLiveMs.p95} ms`);
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
    const before = await ioSnapshot(env);
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
    const after = await ioSnapshot(env);
    const runs: ThroughputResult[] = [];
    // each phase has its own queries: a result cache in the service sees no repeats
    for (const [i, conc] of opts.concurrency.entries()) {
      const client = conc === 1 ? one : many;
      runs.push(
        await throughput(
          Array.from(
            { length: conc },
            () => async (q: Query) => call(client, searchBody(q, {}, opts.limit)),
          ),
          sets.throughput[i],
          opts.durationS,
          `HTTP throughput c=${conc}`,
        ),
      );
    }
    const paired =
      opts.pairedRounds > 0
        ? await measurePaired(env, opts, sets, (body, c) => call(c === 1 ? one : many, body))
        : null;
    return {
      paired,
      side: {
        cases,
        throughput: runs,
        bufferHitRatio: hitRatios(before, after),
        notes: [
          'keep-alive node:http client in the same process as the raw SQL client, on the same CPUs',
        ],
      },
      bootS: round(bootS, 1),
      healthLiveMs,
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
// --paired-rounds (issue 14 target 1): both sides in the same minutes

/** --paired-rounds: warm-up searches per connection on each side before the paired runs. */
const PAIRED_WARMUP = 400;

interface PairedCase {
  rawSqlP50: number;
  apiP50: number;
  /** apiP50 / rawSqlP50 */
  ratio: number;
  /**
   * `--server-timing`: the median of each Server-Timing stage over the case's API
   * searches (ms), `total` being the service's whole handling; absent otherwise.
   */
  serverStages?: Record<string, number>;
}

interface PairedRound {
  order: string;
  rawSqlQps: number;
  apiQps: number;
  ratio: number;
}

interface PairedResult {
  method: string;
  cases: Record<string, PairedCase>;
  concurrency: number;
  roundS: number;
  rounds: PairedRound[];
  /** median of the rounds' apiQps / rawSqlQps */
  throughputRatio: number;
  /** API searches that repeated a query of the pool (0 unless the pool ran out) */
  apiRepeats: number;
}

/**
 * Raw SQL and the API measured alternately, so that what the machine does between
 * phases (other processes, the page cache, CPU frequency) is shared by both: latency
 * query by query on queries neither side has seen (the first side alternates), then
 * throughput at the highest concurrency in rounds whose order alternates. Both sides
 * first run PAIRED_WARMUP searches per connection at that concurrency: a new PostgreSQL
 * backend is slow for its first few hundred searches (measured on this stack: about
 * 28 ms each for its first 50, 7 ms after 300; it maps the shared buffers it touches
 * page by page, without huge pages), and the raw SQL connections here are new.
 */
async function measurePaired(
  env: StackEnv,
  opts: Options,
  sets: QuerySets,
  api: (body: Buffer, concurrency: number) => Promise<Outcome>,
): Promise<PairedResult> {
  const sqlOpts = sqlSearchOptions(opts);
  const conc = Math.max(1, ...opts.concurrency);
  const clients: pg.Client[] = [];
  try {
    for (let i = 0; i < conc; i++) {
      clients.push(await connect(clientConfig(env, env.replica)));
    }
    let next = 0;
    const pool = sets.pairedThroughput;
    // every API search gets a query of its own (the service would answer a repeat from its cache)
    const draw = (): Query => pool[next++ % pool.length];
    const unfiltered = FILTER_CASES[0];
    // Both sides warmed alike at the rounds' concurrency: PAIRED_WARMUP searches per
    // connection (the service spreads its share over its pool's connections).
    const warmRaw = new Progress(
      'paired: raw SQL warm-up',
      conc * PAIRED_WARMUP,
      'searches',
      10_000,
    );
    let warmedRaw = 0;
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < PAIRED_WARMUP; k++) {
          await sqlSearch(
            c,
            pool[(i * PAIRED_WARMUP + k) % pool.length].param,
            unfiltered.filters,
            sqlOpts,
          );
          warmRaw.update(++warmedRaw);
        }
      }),
    );
    const warmApi = new Progress('paired: API warm-up', conc * PAIRED_WARMUP, 'searches', 10_000);
    let warmedApi = 0;
    await Promise.all(
      clients.map(async () => {
        for (let k = 0; k < PAIRED_WARMUP; k++) {
          await api(searchBody(draw(), unfiltered.filters, opts.limit), conc);
          warmApi.update(++warmedApi);
        }
      }),
    );
    const cases: Record<string, PairedCase> = {};
    for (const fc of FILTER_CASES) {
      const rawMs: number[] = [];
      const apiMs: number[] = [];
      const stages: Array<Record<string, number>> = [];
      const progress = new Progress(`paired ${fc.name}`, sets.paired.length, 'pairs', 10_000);
      for (const [i, q] of sets.paired.entries()) {
        const body = searchBody(q, fc.filters, opts.limit);
        const timeRaw = async () => {
          const t0 = performance.now();
          await sqlSearch(clients[0], q.param, fc.filters, sqlOpts);
          rawMs.push(performance.now() - t0);
        };
        const timeApi = async () => {
          const t0 = performance.now();
          const outcome = await api(body, 1);
          apiMs.push(performance.now() - t0);
          if (outcome.stages) {
            stages.push(outcome.stages);
          }
        };
        if (i % 2 === 0) {
          await timeRaw();
          await timeApi();
        } else {
          await timeApi();
          await timeRaw();
        }
        progress.update(i + 1);
      }
      const rawP50 = summarize(rawMs).p50;
      const apiP50 = summarize(apiMs).p50;
      cases[fc.name] = { rawSqlP50: rawP50, apiP50, ratio: round(apiP50 / rawP50, 2) };
      cases[fc.name].serverStages = medianStages(stages);
      log(
        `paired ${fc.name}: API p50 ${apiP50} ms, raw SQL p50 ${rawP50} ms, ratio ${cases[fc.name].ratio}` +
          (cases[fc.name].serverStages
            ? `; server stages (median ms) ${JSON.stringify(cases[fc.name].serverStages)}`
            : ''),
      );
    }
    // raw SQL caches nothing: its own pass over the same queries
    let nextRaw = 0;
    const rawWorkers = clients.map(
      (c) => async () =>
        sqlSearch(c, pool[nextRaw++ % pool.length].param, unfiltered.filters, sqlOpts),
    );
    const apiWorkers = clients.map(
      () => async () => api(searchBody(draw(), unfiltered.filters, opts.limit), conc),
    );
    const rounds: PairedRound[] = [];
    for (let r = 0; r < opts.pairedRounds; r++) {
      const rawFirst = r % 2 === 0;
      const qps: Record<string, number> = {};
      for (const side of rawFirst ? ['raw', 'api'] : ['api', 'raw']) {
        const workers = side === 'raw' ? rawWorkers : apiWorkers;
        const res = await throughput(
          workers.map((w) => () => w()),
          [sets.pairedThroughput[0]],
          opts.pairedRoundS,
          `paired round ${r + 1}/${opts.pairedRounds} ${side === 'raw' ? 'raw SQL' : 'HTTP'} c=${conc}`,
        );
        qps[side] = res.qps;
      }
      rounds.push({
        order: rawFirst ? 'raw SQL, API' : 'API, raw SQL',
        rawSqlQps: qps.raw,
        apiQps: qps.api,
        ratio: round(qps.api / qps.raw, 2),
      });
    }
    const apiRepeats = Math.max(0, next - pool.length);
    if (apiRepeats > 0) {
      log(
        `paired: ${apiRepeats} API searches repeated a query (the service may have answered them from its cache)`,
      );
    }
    const ratios = rounds.map((r) => r.ratio).sort((a, b) => a - b);
    const mid = ratios.length >> 1;
    const throughputRatio =
      ratios.length === 0
        ? 0
        : ratios.length % 2
          ? ratios[mid]
          : round((ratios[mid - 1] + ratios[mid]) / 2, 2);
    return {
      method:
        'latency: one raw SQL search and one API search per query, alternating which goes first; ' +
        `throughput: ${opts.pairedRounds} rounds of ${opts.pairedRoundS}s per side at c=${conc}, order alternating`,
      cases,
      concurrency: conc,
      roundS: opts.pairedRoundS,
      rounds,
      throughputRatio,
      apiRepeats,
    };
  } finally {
    for (const c of clients) {
      await c.end();
    }
  }
}

// ---------------------------------------------------------------------------
// --monitoring-ab (issue 12): unfiltered searches with monitoring off versus on

async function monitoringAb(
  env: StackEnv,
  opts: Options,
  warmupPool: Query[],
  pool: Query[],
  comparison?: AbComparison,
): Promise<MonitoringAbReport> {
  const conc = Math.max(1, ...opts.concurrency);
  return runMonitoringAb({
    comparison,
    workload: `bench:search unfiltered POST /v1/recipes/search (limit ${opts.limit}, c=${conc}, fresh result-cache namespace per round)`,
    rounds: opts.abRounds,
    paired: opts.abPaired,
    idleS: opts.abIdleS,
    warmupS: opts.abWarmupS,
    durationS: opts.durationS,
    cloudwatchIntervalS: opts.abCloudwatchIntervalS,
    only: opts.abOnly,
    start: async (monitoringEnv): Promise<AbService> => {
      const secret = randomBytes(24).toString('hex');
      const port = await freePort();
      const service = ServiceProcess.start(
        REPO_DIR,
        httpServiceEnv(env, opts, secret, monitoringEnv),
        port,
      );
      const one = new HttpClient('127.0.0.1', port, 1);
      const many = new HttpClient('127.0.0.1', port, conc);
      const auth = { authorization: `Bearer ${secret}` };
      const stop = async (): Promise<void> => {
        one.close();
        many.close();
        await service.stop();
      };
      let bootS: number;
      try {
        bootS = await service.waitReady(one, 120_000);
      } catch (err) {
        await stop();
        throw err;
      }
      const call = async (q: Query): Promise<void> => {
        const res = await many.request(
          'POST',
          '/v1/recipes/search',
          searchBody(q, {}, opts.limit),
          auth,
        );
        if (res.status !== 200) {
          throw new Error(
            `POST /v1/recipes/search answered ${res.status}: ${res.body.slice(0, 500)}`,
          );
        }
      };
      const workers = Array.from({ length: conc }, () => call);
      const run = async (qs: Query[], durationS: number, label: string) => {
        const t = await throughput(workers, qs, durationS, label);
        return {
          seconds: t.seconds,
          completed: t.completed,
          errors: 0,
          rps: t.qps,
          latencyMs: t.latencyMs,
        };
      };
      return {
        bootS,
        warmup: (label) => run(warmupPool, opts.abWarmupS, label),
        measure: (label) => run(pool, opts.durationS, label),
        evidence: async () => {
          const res = await one.request('GET', '/metrics');
          const m = parseMetrics(res.body);
          return {
            cloudwatchDatumsSent: metricSum(m, 'dbu_cloudwatch_datums_sent_total'),
            cloudwatchPutFailures: metricSum(m, 'dbu_cloudwatch_put_failures_total'),
            alertEvaluations: metricSum(m, 'dbu_alert_evaluations_total'),
            samplerLeader: metricSum(m, 'dbu_monitoring_sampler_leader'),
          };
        },
        cpuSeconds: async () =>
          metricSum(
            parseMetrics((await one.request('GET', '/metrics')).body),
            'process_cpu_seconds_total',
          ),
        stop,
      };
    },
  });
}

// ---------------------------------------------------------------------------
// Ground truth

/** JSON with object keys sorted: jsonb does not keep key order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/** The loaded rows again, into `table`: the same draws as loadDataset, in the same order. */
function populate(table: InMemoryTable, opts: Options, model: EmbeddingModel, rows: number): void {
  const vecRng = new Rng(opts.seed);
  const factory = new RecipeFactory(new Rng(opts.seed ^ FACTORY_SEED_XOR));
  const v = new Float32Array(model.params.dims);
  const progress = new Progress('regenerate rows', rows, 'rows', 10_000);
  for (let i = 0; i < rows; i++) {
    model.sample(vecRng, v);
    const r = factory.next();
    table.add(r.id, r, v);
    if (i % 10_000 === 0) {
      progress.update(i);
    }
  }
  progress.done(rows);
}

/**
 * `--truth memory`: exact answers from the rows regenerated in memory, one pass of
 * distances per query for every filter case (about 0.3 s a query at 100,000 rows),
 * where an exact scan in PostgreSQL detoasts every embedding (about 2.5 s at 100,000).
 */
function memoryTruth(
  opts: Options,
  model: EmbeddingModel,
  rows: number,
  queries: Query[],
): Record<string, Hit[][]> {
  const table = new InMemoryTable(model.params.dims, rows);
  populate(table, opts, model, rows);
  const truth: Record<string, Hit[][]> = Object.fromEntries(
    FILTER_CASES.map((fc) => [fc.name, []]),
  );
  const progress = new Progress('exact (memory)', queries.length, 'queries', 10_000);
  queries.forEach((q, n) => {
    const answers = table.topKHits(
      JSON.parse(q.literal) as number[],
      FILTER_CASES.map((fc) => fc.filters),
      opts.limit,
      MAX_DISTANCE,
    );
    FILTER_CASES.forEach((fc, i) => truth[fc.name].push(answers[i]));
    progress.update(n + 1);
  });
  progress.done(queries.length);
  return truth;
}

async function groundTruth(
  env: StackEnv,
  opts: Options,
  load: LoadReport,
  queries: Query[],
  model: EmbeddingModel,
): Promise<Record<string, Hit[][]>> {
  // on the primary, so the exact scans do not evict the replica's warmed index
  return withClient(clientConfig(env, env.primary), async (c) => {
    // cached per query set for --skip-load re-runs; a load deletes every cache entry
    // the data is a function of (rows, dataset params): a reload of the same data keeps it valid
    const key = `truth:${createHash('sha256')
      .update(stableJson([load.rows, load.dataset, queries.length, opts.limit, FILTER_CASES]))
      .digest('hex')
      .slice(0, 16)}`;
    const cached = await c.query<{ value: Record<string, Hit[][]> }>(
      `SELECT value FROM bench_meta WHERE key = $1`,
      [key],
    );
    if (cached.rows[0]) {
      log(`ground truth reused from bench_meta (${key})`);
      return cached.rows[0].value;
    }
    let truth: Record<string, Hit[][]> = {};
    if (opts.truth === 'memory') {
      truth = memoryTruth(opts, model, load.rows, queries);
    } else {
      for (const fc of FILTER_CASES) {
        const progress = new Progress(`exact ${fc.name}`, queries.length, 'queries', 10_000);
        truth[fc.name] = [];
        for (const q of queries) {
          truth[fc.name].push(
            await exactSearch(c, q.literal, fc.filters, opts.limit, MAX_DISTANCE),
          );
          progress.update(truth[fc.name].length);
        }
        progress.done(queries.length);
      }
    }
    await c.query(`INSERT INTO bench_meta (key, value) VALUES ($1, $2)`, [
      key,
      JSON.stringify(truth),
    ]);
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
  /** one set per throughput phase (same index as opts.concurrency) */
  throughput: Query[][];
  /** --paired-rounds: queries neither side has seen (the API's result cache stays cold) */
  paired: Query[];
  /** --paired-rounds: the throughput rounds' queries, drawn in order, never repeated */
  pairedThroughput: Query[];
}

/** Issue 14 target 1, from the paired measurement. */
function pairedTargets(p: PairedResult | null): Target[] {
  if (!p) {
    return [];
  }
  return [
    ...FILTER_CASES.map((fc) => ({
      name: `paired API p50 / raw SQL p50 ${fc.name}`,
      target: '<= 1.25',
      value: String(p.cases[fc.name].ratio),
      pass: p.cases[fc.name].ratio <= 1.25,
    })),
    {
      name: `paired API / raw SQL throughput c=${p.concurrency} (median of ${p.rounds.length})`,
      target: '>= 0.7',
      value: String(p.throughputRatio),
      pass: p.throughputRatio >= 0.7,
    },
  ];
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

/** Target 2 of issue 14 in every phase: no query below recall 0.5, mean recall ≥ 0.98. */
function incrementalTargets(study: IncrementalReport): Target[] {
  const out: Target[] = [];
  const ratio = study.insert.api.rowsPerS / study.insert.rawSql.rowsPerS;
  out.push({
    name: 'batch upsert of 100 via the API / the same INSERT bare (rows/s)',
    target: '>= 0.8',
    value: ratio.toFixed(2),
    pass: ratio >= 0.8,
  });
  for (const p of study.phases) {
    for (const fc of FILTER_CASES) {
      const c = p.service[fc.name];
      out.push({
        name: `${p.phase} ${fc.name}: queries below recall 0.5 / mean recall`,
        target: '0 / >= 0.98',
        value: `${c.missed} / ${c.recall.toFixed(4)}`,
        pass: c.missed === 0 && c.recall >= 0.98,
      });
    }
  }
  return out;
}

function renderIncremental(study: IncrementalReport): string {
  const rows: string[][] = [];
  for (const p of study.phases) {
    for (const fc of FILTER_CASES) {
      const s = p.service[fc.name];
      const i = p.indexAlone[fc.name];
      rows.push([
        p.phase,
        fc.name,
        `${s.recall.toFixed(3)} / ${s.missed}`,
        `${i.recall.toFixed(3)} / ${i.missed}`,
        `${s.p50Ms.toFixed(2)} / ${i.p50Ms.toFixed(2)}`,
        JSON.stringify(s.plans ?? {}),
      ]);
    }
    rows.push([p.phase, 'escalations', JSON.stringify(p.escalations), '', '', '']);
  }
  const w = (x: WriteSide): string =>
    `${x.rowsPerS} rows/s, batch p50 ${x.batchMs.p50} ms (first tenth ${x.firstTenthP50Ms}, last tenth ${x.lastTenthP50Ms})`;
  return (
    `population A ${study.populationA} rows (bulk), B ${study.populationB} rows in batches of 100, alternating ` +
    `POST /v1/recipes/batch: ${w(study.insert.api)} and the same INSERT bare: ${w(study.insert.rawSql)}; ` +
    `deleted ${study.deleted}, VACUUM ${study.vacuumS}s\n` +
    table2(
      [
        'phase',
        'case',
        'service recall / missed',
        'index alone',
        'p50 ms service / alone',
        'plans',
      ],
      rows,
    )
  );
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
      const plans = Object.entries(r.plans ?? {})
        .map(([k, v]) => `${k}:${v}`)
        .join(' ');
      rows.push([
        name,
        fc.name,
        `${(100 * sel[fc.name].fraction).toFixed(1)} %`,
        r.latencyMs.p50.toFixed(2),
        r.latencyMs.p95.toFixed(2),
        r.latencyMs.p99.toFixed(2),
        r.recall.toFixed(4),
        r.recallMin.toFixed(2),
        String(r.missed),
        String(r.short),
        plans,
      ]);
    }
  }
  out.push(
    `Vector search, ${report.dataset.rows.toLocaleString('en')} rows x ${EMBEDDING_DIMENSIONS} d, ` +
      `${report.parameters.queries} queries per case, limit ${report.parameters.limit}, ef_search ${effectiveEf(report.parameters)}, concurrency 1`,
  );
  out.push(
    table2(
      [
        'side',
        'case',
        'rows',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        `recall@${report.parameters.limit}`,
        'min',
        'missed',
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
        String(t.repeats),
      ]);
    }
  }
  out.push(
    `Throughput, unfiltered, ${report.parameters.durationS}s closed loop per row (client shares the ${os.cpus().length} CPUs)`,
  );
  out.push(
    table2(['side', 'c', 'searches/s', 'p50 ms', 'p95 ms', 'p99 ms', 'done', 'repeats'], tput),
  );
  out.push('');
  const paired = report.results.paired;
  if (paired) {
    out.push(`Paired (issue 14 target 1): ${paired.method}`);
    out.push(
      table2(
        ['case', 'API p50 ms', 'raw SQL p50 ms', 'ratio'],
        FILTER_CASES.map((fc) => {
          const c = paired.cases[fc.name];
          return [fc.name, c.apiP50.toFixed(2), c.rawSqlP50.toFixed(2), c.ratio.toFixed(2)];
        }),
      ),
    );
    const withStages = FILTER_CASES.filter((fc) => paired.cases[fc.name].serverStages);
    if (withStages.length > 0) {
      const names = [
        ...new Set(withStages.flatMap((fc) => Object.keys(paired.cases[fc.name].serverStages!))),
      ];
      out.push('Server-Timing stages of the paired API searches, median ms (total: the service)');
      out.push(
        table2(
          ['case', ...names],
          withStages.map((fc) => {
            const st = paired.cases[fc.name].serverStages!;
            return [fc.name, ...names.map((n) => (st[n] ?? 0).toFixed(3))];
          }),
        ),
      );
    }
    out.push(
      table2(
        ['round', 'order', 'API /s', 'raw SQL /s', 'ratio'],
        paired.rounds.map((r, i) => [
          String(i + 1),
          r.order,
          r.apiQps.toFixed(1),
          r.rawSqlQps.toFixed(1),
          r.ratio.toFixed(2),
        ]),
      ),
    );
    out.push(
      `throughput ratio at c=${paired.concurrency}, median of rounds: ${paired.throughputRatio}; API searches that repeated a query: ${paired.apiRepeats}`,
    );
    out.push('');
  }
  if (report.efSweep.length) {
    out.push('raw SQL recall by ef_search (c=1, HNSW forced: no exact plan)');
    out.push(
      table2(
        [
          'ef_search',
          'case',
          `recall@${report.parameters.limit}`,
          'missed',
          'short',
          'p50 ms',
          'p95 ms',
        ],
        report.efSweep.map((s) => [
          String(s.efSearch),
          s.case,
          s.recall.toFixed(4),
          String(s.missed),
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
  const http = report.results.http;
  if (http) {
    const took = FILTER_CASES.map(
      (fc) => `${fc.name} ${http.cases[fc.name].serverTookMs?.p50.toFixed(2) ?? '?'}`,
    ).join(', ');
    out.push(`API tookMs (inside the service, after validation) p50: ${took}`);
    const floor = report.results.healthLiveMs;
    if (floor) {
      out.push(
        `HTTP floor, GET /health/live at c=1: p50 ${floor.p50.toFixed(2)} ms, p95 ${floor.p95.toFixed(2)} ms`,
      );
    }
    if (http.bufferHitRatio) {
      const h = http.bufferHitRatio;
      out.push(
        `Replica buffer hit ratio during the HTTP latency runs: index ${h.index}, heap ${h.heap}, toast ${h.toast}`,
      );
    }
  }
  if (report.results.rawSql.bufferHitRatio) {
    const h = report.results.rawSql.bufferHitRatio;
    out.push(
      `Replica buffer hit ratio during the raw SQL latency runs: index ${h.index}, heap ${h.heap}, toast ${h.toast}`,
    );
  }
  out.push('');
  out.push('Targets');
  out.push(targetsTable(report.targets, 2));
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
  warmup: {
    beforeRawSql: { method: string; seconds: number; detail: string };
    beforeHttp?: { method: string; seconds: number; detail: string };
  };
  sqlPlans: Record<string, { search: string; exact: string }>;
  results: {
    rawSql: SideResult;
    http: SideResult | null;
    httpSkipped?: string;
    serviceBootS?: number;
    /** GET /health/live at concurrency 1: the HTTP stack without any search work */
    healthLiveMs?: LatencySummary;
    /** --paired-rounds: both sides alternately in the same minutes (issue 14 target 1) */
    paired?: PairedResult;
  };
  efSweep: SweepRow[];
  targets: Target[];
  phasesS: Record<string, number>;
  loadAverage1mAfterPhase: Record<string, number>;
}

// ---------------------------------------------------------------------------

/**
 * The report of a regime that changed the table (incremental, loader): the load record
 * goes, so that --skip-load cannot reuse what no longer is as loaded; returns its file.
 */
async function regimeReport(
  env: StackEnv,
  mode: 'incremental' | 'loader',
  r: {
    startedAt: string;
    opts: Options & { maxDistance?: number };
    load: LoadReport;
    study: unknown;
    phases: Record<string, number>;
    targets?: Target[];
  },
): Promise<string> {
  await withClient(clientConfig(env, env.primary), (c) =>
    c.query(`DELETE FROM bench_meta WHERE key = 'load'`),
  );
  const report = {
    benchmark: 'search',
    mode,
    startedAt: r.startedAt,
    finishedAt: new Date().toISOString(),
    machine: await machineInfo(env),
    parameters: r.opts,
    load: r.load,
    results: r.study,
    ...(r.targets ? { targets: r.targets } : {}),
    phasesS: r.phases,
  };
  return writeReport('search', r.startedAt, r.opts.tag || mode, report);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const phases: Record<string, number> = {};
  // 1-minute load average at the end of each phase: other work on the machine shows here
  const loadAverage: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`--- ${name}`);
    const [result, s] = await timed(fn);
    phases[name] = round(s, 1);
    loadAverage[name] = round(os.loadavg()[0], 2);
    return result;
  };

  const env = await loadStackEnv(REPO_DIR);
  log(
    `primary ${env.primary.host}:${env.primary.port}, replica ${env.replica.host}:${env.replica.port}, database ${BENCH_DB}`,
  );
  await phase('setup', async () => {
    if (await ensureOwnedDatabase(env, BENCH_DB)) {
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
    if (opts.rebuildIndex) {
      const previous = load;
      load = await phase('index rebuild', () => rebuildIndex(env, opts, previous));
    }
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
    throughput: opts.concurrency.map((c, i) =>
      makeQueries(
        model,
        opts.seed + 3 + i,
        Math.min(30_000, opts.durationS * (c === 1 ? 700 : 1_200)),
      ),
    ),
    paired: opts.pairedRounds > 0 ? makeQueries(model, opts.seed + 50, opts.queries) : [],
    // a side answers fewer than 100 searches/s at c=8 on this machine's 2 cores
    pairedThroughput:
      opts.pairedRounds > 0
        ? makeQueries(
            model,
            opts.seed + 51,
            Math.min(
              20_000,
              Math.max(1, ...opts.concurrency) * PAIRED_WARMUP +
                opts.pairedRounds * opts.pairedRoundS * 250,
            ),
          )
        : [],
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
  if (opts.regime === 'loader') {
    const study = await phase('loader vs COPY', () =>
      loaderVsCopy(env, model, {
        rows: opts.secondRows,
        rounds: Math.max(2, Math.min(10, Math.floor(opts.secondRows / 1_000))),
        seed: opts.seed ^ 0x68e31da4,
        repoDir: REPO_DIR,
      }),
    );
    // deleted rows stay in the HNSW index until VACUUM: --skip-load must not reuse it
    const file = await regimeReport(env, 'loader', { startedAt, opts, load, study, phases });
    process.stdout.write(
      `${table2(
        ['side', 'rows', 'seconds', 'rows/s'],
        [
          [
            'npm run recipes:load',
            String(study.loader.rows),
            String(study.loader.seconds),
            String(study.loader.rowsPerS),
          ],
          [
            'binary COPY (limit)',
            String(study.copy.rows),
            String(study.copy.seconds),
            String(study.copy.rowsPerS),
          ],
        ],
      )}\nloader / COPY: ${study.loaderToCopy} (into ${study.tableRowsBefore} rows, index in place)\nresults: ${path.relative(REPO_DIR, file)}\n`,
    );
    return;
  }
  if (opts.regime === 'incremental') {
    const study = await phase('incremental regime', () =>
      incrementalStudy(env, sel.total, model, {
        secondRows: opts.secondRows,
        queries: opts.queries,
        deleteShare: opts.deleteShare,
        limit: opts.limit,
        maxDistance: MAX_DISTANCE,
        seed: opts.seed,
        sql: sqlSearchOptions(opts),
        serviceEnv: (secret, scopes) => {
          const e = httpServiceEnv(env, opts, secret);
          const keys = JSON.parse(e.API_KEYS) as Array<{ scopes: string[] }>;
          keys[0].scopes = scopes;
          // the phases ask the same queries again: every answer must be computed anew
          return { ...e, API_KEYS: JSON.stringify(keys), CACHE_SEARCH_RESULTS_STRATEGY: 'none' };
        },
        witnessRefreshS: Number(
          opts.serviceEnv.VECTOR_WITNESS_REFRESH_S ?? SERVICE.VECTOR_WITNESS_REFRESH_S,
        ),
        makeQueries,
        populateA: (table) => populate(table, opts, model, load.rows),
        waitForReplica: () => waitForReplica(env),
        repoDir: REPO_DIR,
      }),
    );
    // the table no longer holds what the load wrote: --skip-load must not reuse it
    const targets = incrementalTargets(study);
    const file = await regimeReport(env, 'incremental', {
      startedAt,
      opts: { ...opts, maxDistance: MAX_DISTANCE },
      load,
      study,
      phases,
      targets,
    });
    process.stdout.write(
      `${renderIncremental(study)}\n\n${targetsTable(targets)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
    );
    return;
  }
  if (opts.monitoringAb || opts.tlsAb) {
    // only the A/B of the HTTP throughput phase; its own report file
    const conc = Math.max(1, ...opts.concurrency);
    const comparison = opts.tlsAb ? await tlsComparison(env) : undefined;
    const mode = opts.tlsAb ? 'tls-ab' : 'monitoring-ab';
    const abWarmup = await phase('prewarm', () => prewarm(env));
    const pool = makeQueries(model, opts.seed + 3, Math.min(30_000, opts.durationS * 1_200));
    const warmPool = makeQueries(model, opts.seed + 2, Math.max(100, opts.abWarmupS * 1_200));
    const ab = await phase(opts.tlsAb ? 'TLS A/B' : 'monitoring A/B', () =>
      monitoringAb(env, opts, warmPool, pool, comparison),
    );
    const abReport = {
      benchmark: 'search',
      mode,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: await machineInfo(env),
      parameters: { ...opts, abConcurrency: conc, maxDistance: MAX_DISTANCE },
      dataset: { rows: sel.total, params: load.dataset },
      warmup: { beforeAb: abWarmup },
      results: opts.tlsAb ? { tlsAb: ab } : { monitoringAb: ab },
      phasesS: phases,
      loadAverage1mAfterPhase: loadAverage,
    };
    const file = await writeReport('search', startedAt, opts.tag || mode, abReport);
    process.stdout.write(
      `${renderMonitoringAb(ab)}\n\nphases (s): ${JSON.stringify(phases)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
    );
    return;
  }
  const truth = await phase('ground truth (exact, primary)', () =>
    groundTruth(env, opts, load, sets.measured, model),
  );
  const diff = await difficulty(env, sets.measured, truth[FILTER_CASES[0].name]);
  log(`difficulty: ${JSON.stringify(diff)}`);
  const warmup = await phase('prewarm', () => prewarm(env));
  const raw = await phase('raw SQL', () => measureRawSql(env, opts, sets, truth, sel.byCase));

  let http: Awaited<ReturnType<typeof measureHttp>> | null = null;
  let httpSkipped: string | undefined;
  let warmupHttp: Awaited<ReturnType<typeof prewarm>> | undefined;
  if (opts.skipHttp) {
    httpSkipped = '--skip-http';
  } else if (!existsSync(path.join(REPO_DIR, 'dist/src/recipes/recipes.controller.js'))) {
    httpSkipped = 'dist/src/recipes/recipes.controller.js is missing: the search API is not built';
  } else {
    // the raw SQL phases pushed toast pages through shared_buffers: same start for both sides
    warmupHttp = await phase('prewarm before HTTP', () => prewarm(env));
    try {
      http = await phase('HTTP API', () => measureHttp(env, opts, sets, truth, sel.byCase));
    } catch (err) {
      // keep the raw SQL numbers: the report is still written, naming the failure
      httpSkipped = `failed: ${err instanceof Error ? err.message : String(err)}`;
    }
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
    warmup: { beforeRawSql: warmup, ...(warmupHttp ? { beforeHttp: warmupHttp } : {}) },
    sqlPlans: raw.plans,
    results: {
      rawSql: raw.side,
      http: http?.side ?? null,
      ...(httpSkipped ? { httpSkipped } : {}),
      ...(http ? { serviceBootS: http.bootS, healthLiveMs: http.healthLiveMs } : {}),
      ...(http?.paired ? { paired: http.paired } : {}),
    },
    efSweep: raw.sweep,
    targets: [
      ...evaluateTargets(raw.side, http?.side ?? null, sel.byCase, opts.limit),
      ...pairedTargets(http?.paired ?? null),
    ],
    phasesS: phases,
    loadAverage1mAfterPhase: loadAverage,
  };
  const file = await writeReport('search', report.startedAt, opts.tag, report);
  process.stdout.write(
    `${render(report)}\n\nphases (s): ${JSON.stringify(phases)}\nload average (1 min) after each phase: ${JSON.stringify(loadAverage)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
  );
}

runBench('search', main);
