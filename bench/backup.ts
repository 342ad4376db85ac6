/**
 * Backup benchmark: full backup, differential after 1 % of the rows changed, and the
 * restore validation end to end (the measured RTO), all through the service's own API,
 * on the data set of bench:search (`dbu_bench`: recipes with 1536-d embeddings and the
 * HNSW index).
 *
 *   npm run bench:backup -- [--rows 100000] [--change-fraction 0.01] [--load] [--rto-s 300]
 *
 * Progress goes to stderr, the result table to stdout, everything to
 * bench/results/backup-<date>.json. See bench/README.md.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { EMBEDDING_DIMENSIONS, HNSW_INDEX } from '../src/recipes/recipes.constants.js';
import { DEFAULT_DATASET, EmbeddingModel } from './lib/dataset.js';
import { BenchStack } from './lib/isolated-stack.js';
import { hostInfo } from './lib/machine.js';
import { REPO_DIR, runBench, writeReport } from './lib/paths.js';
import { log, timed } from './lib/progress.js';
import { Rng } from './lib/rng.js';
import { HttpClient, ServiceProcess, freePort } from './lib/service.js';
import { BENCH_DB, clientConfig, loadStackEnv, withClient, type StackEnv } from './lib/stack.js';
import { round } from './lib/stats.js';
import { table, targetsTable, type Target } from './lib/text-table.js';

const execFileAsync = promisify(execFile);
/** --own-stack: pgBackRest backs up a whole cluster, so a small test needs a small one. */
const OWN_STACK_PORTS = { primary: 28492, replica: 28493, pgbouncer: 28592, redis: 28419 };

// ---------------------------------------------------------------------------
// Options

interface Options {
  rows: number;
  load: boolean;
  changeFraction: number;
  rtoS: number;
  seed: number;
  buildMem: string;
  timeoutS: number;
  port: number;
  ownStack: boolean;
  tag: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '100000' },
      load: { type: 'boolean', default: false },
      'change-fraction': { type: 'string', default: '0.01' },
      'rto-s': { type: 'string', default: '300' },
      seed: { type: 'string', default: String(DEFAULT_DATASET.seed) },
      'build-mem': { type: 'string', default: '256MB' },
      'timeout-s': { type: 'string', default: '3600' },
      port: { type: 'string', default: process.env.BENCH_BACKUP_PORT ?? '20190' },
      'own-stack': { type: 'boolean', default: false },
      tag: { type: 'string', default: '' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:backup -- [--rows 100000] [--load] [--change-fraction 0.01] [--rto-s 300]\n' +
        '  [--seed N] [--build-mem 256MB] [--timeout-s 3600] [--tag NAME (backup-<date>-NAME.json)]\n' +
        '  [--port 20190 (the service under test; BENCH_BACKUP_PORT; 0: any free port)]\n' +
        '  [--own-stack (a throwaway stack in .stack/bench-backup, removed afterwards: the smoke test)]\n' +
        "  The data set is bench:search's (BENCH_SEARCH_DB, default dbu_bench): loaded when missing,\n" +
        '  when its row count differs from --rows, or with --load.\n',
    );
    process.exit(0);
  }
  const num = (name: string, v: string, min: number, max: number, integer = true): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      throw new Error(
        `--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got '${v}'`,
      );
    }
    return n;
  };
  if (!/^[a-z0-9-]{0,40}$/.test(values.tag)) {
    throw new Error(`--tag must be lowercase letters, digits and dashes, got '${values.tag}'`);
  }
  if (!/^\d+(kB|MB|GB)$/.test(values['build-mem'])) {
    throw new Error(`--build-mem must look like 256MB or 2GB, got '${values['build-mem']}'`);
  }
  return {
    rows: num('rows', values.rows, 100, 10_000_000),
    load: values.load,
    changeFraction: num('change-fraction', values['change-fraction'], 0, 1, false),
    rtoS: num('rto-s', values['rto-s'], 1, 86_400),
    seed: num('seed', values.seed, 0, 2 ** 31),
    buildMem: values['build-mem'],
    timeoutS: num('timeout-s', values['timeout-s'], 10, 86_400),
    port: num('port', values.port, 0, 32_767),
    ownStack: values['own-stack'],
    tag: values.tag,
  };
}

// ---------------------------------------------------------------------------
// The data set: bench:search's loader, run as a child process

interface LoadInfo {
  rows: number;
  loadedAt: string;
  indexSeconds: number | null;
  maintenanceWorkMem: string | null;
  loadedByThisRun: boolean;
}

async function loadedRows(env: StackEnv): Promise<LoadInfo | null> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    const meta = await c.query<{ t: string | null }>(`SELECT to_regclass('bench_meta')::text AS t`);
    if (!meta.rows[0].t) {
      return null;
    }
    const { rows } = await c.query<{
      value: {
        rows: number;
        loadedAt: string;
        index?: { seconds: number; maintenanceWorkMem: string };
      };
    }>(`SELECT value FROM bench_meta WHERE key = 'load'`);
    const idx = await c.query(`SELECT 1 FROM pg_indexes WHERE indexname = $1`, [HNSW_INDEX]);
    if (!rows[0] || !idx.rowCount) {
      return null;
    }
    const v = rows[0].value;
    return {
      rows: v.rows,
      loadedAt: v.loadedAt,
      indexSeconds: v.index?.seconds ?? null,
      maintenanceWorkMem: v.index?.maintenanceWorkMem ?? null,
      loadedByThisRun: false,
    };
  }).catch((err: Error) => {
    if (/does not exist/.test(err.message)) {
      return null; // no database yet
    }
    throw err;
  });
}

/**
 * bench:search's own load (database, migrations, seeded generator, binary COPY, HNSW build),
 * with every measuring phase of that bench reduced to nothing; its report goes to a temp dir.
 */
async function loadWithSearchBench(opts: Options): Promise<void> {
  const script = path.join(REPO_DIR, 'dist/bench/search.js');
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'dbu-bench-backup-load-'));
  log(`loading ${opts.rows} rows with bench:search's loader (${BENCH_DB})`);
  try {
    await execFileAsync(
      process.execPath,
      [
        script,
        '--rows',
        String(opts.rows),
        '--seed',
        String(opts.seed),
        '--build-mem',
        opts.buildMem,
        '--queries',
        '1',
        '--warmup-queries',
        '0',
        '--concurrency',
        '',
        '--ef-sweep',
        '',
        '--duration-s',
        '1',
        '--skip-http',
      ],
      {
        cwd: REPO_DIR,
        env: { ...process.env, BENCH_RESULTS_DIR: tmp },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `bench:search's loader failed: ${e.message}\n${(e.stderr ?? '').slice(-3000)}`,
      {
        cause: err,
      },
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Facts

interface Sizes {
  databaseBytes: number;
  clusterBytes: number;
  recipesTotalBytes: number;
  hnswIndexBytes: number;
  rows: number;
}

async function sizes(env: StackEnv): Promise<Sizes> {
  return withClient(clientConfig(env, env.primary), async (c) => {
    const { rows } = await c.query<Record<string, string>>(
      `SELECT pg_database_size(current_database()) AS db,
              (SELECT sum(pg_database_size(oid)) FROM pg_database) AS cluster,
              pg_total_relation_size('recipes') AS recipes,
              pg_relation_size($1::regclass) AS idx,
              (SELECT count(*) FROM recipes) AS n`,
      [HNSW_INDEX],
    );
    const r = rows[0];
    return {
      databaseBytes: Number(r.db),
      clusterBytes: Number(r.cluster),
      recipesTotalBytes: Number(r.recipes),
      hnswIndexBytes: Number(r.idx),
      rows: Number(r.n),
    };
  });
}

async function machineInfo(env: StackEnv): Promise<Record<string, unknown>> {
  const host = await hostInfo(REPO_DIR);
  const server = await withClient(clientConfig(env, env.primary), async (c) => {
    const { rows } = await c.query<Record<string, string>>(
      `SELECT current_setting('server_version') AS postgres,
              (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,
              current_setting('shared_buffers') AS "sharedBuffers"`,
    );
    return rows[0];
  });
  let pgbackrest = 'unknown';
  try {
    pgbackrest = (await execFileAsync('pgbackrest', ['version'])).stdout.trim();
  } catch {
    // not on PATH: the report says unknown
  }
  return { ...host, nproc: os.cpus().length, ...server, pgbackrest };
}

/** `pgbackrest info` of the stack's stanza, as the OS user the service uses. */
async function repoInfo(env: StackEnv): Promise<{
  sets: Array<{
    label: string;
    type: string;
    seconds: number;
    sizeBytes: number;
    repoDeltaBytes: number;
  }>;
  repoDirBytes: number | null;
  archiveBytes: number | null;
}> {
  const conf = env.vars.BACKUP_PGBACKREST_CONFIG;
  const stanza = env.vars.BACKUP_PGBACKREST_STANZA ?? 'dbu';
  const args = [`--config=${conf}`, `--stanza=${stanza}`, 'info', '--output=json'];
  const osUser = env.vars.BACKUP_OS_USER;
  const [file, argv] =
    osUser && process.getuid?.() === 0
      ? ['runuser', ['-u', osUser, '--', 'pgbackrest', ...args]]
      : ['pgbackrest', args];
  const { stdout } = await execFileAsync(file, argv, { maxBuffer: 16 * 1024 * 1024 });
  const info = JSON.parse(stdout) as Array<{
    name: string;
    backup?: Array<{
      label: string;
      type: string;
      timestamp: { start: number; stop: number };
      info?: { size?: number; repository?: { delta?: number } };
    }>;
  }>;
  const st = info.find((s) => s.name === stanza);
  // the local stack's repository folder (docker/stack.sh): everything, and the WAL archive
  const du = async (dir: string): Promise<number | null> => {
    if (!env.stackDir || !existsSync(dir)) {
      return null;
    }
    const { stdout } = await execFileAsync('du', ['-sb', dir]);
    return Number(stdout.split(/\s/)[0]);
  };
  const repoDir = path.join(env.stackDir ?? '', 'backup-repo');
  const repoDirBytes = await du(repoDir);
  const archiveBytes = await du(path.join(repoDir, 'archive'));
  return {
    sets: (st?.backup ?? []).map((b) => ({
      label: b.label,
      type: b.type,
      seconds: b.timestamp.stop - b.timestamp.start,
      sizeBytes: b.info?.size ?? 0,
      repoDeltaBytes: b.info?.repository?.delta ?? 0,
    })),
    repoDirBytes,
    archiveBytes,
  };
}

// ---------------------------------------------------------------------------
// The service

interface Api {
  call<T>(method: string, url: string, body?: unknown, want?: number): Promise<T>;
}

function api(client: HttpClient, secret: string): Api {
  return {
    async call<T>(method: string, url: string, body?: unknown, want = 200): Promise<T> {
      const res = await client.request(
        method,
        url,
        body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
        { authorization: `Bearer ${secret}` },
      );
      if (res.status !== want) {
        throw new Error(`${method} ${url} answered ${res.status}: ${res.body.slice(0, 1000)}`);
      }
      return JSON.parse(res.body) as T;
    },
  };
}

interface BackupDto {
  id: string;
  kind: string;
  type: string;
  label: string | null;
  status: string;
  sizeBytes: number | null;
  repoSizeBytes: number | null;
  durationMs: number | null;
  error: string | null;
  manifest: { exact?: boolean; vectorQueries?: unknown[]; tables?: Record<string, unknown> } | null;
}

interface CheckDto {
  type: string;
  passed: boolean;
  details: Record<string, unknown>;
}

interface ValidationDto {
  id: string;
  status: string;
  error: string | null;
  report: {
    checks: CheckDto[];
    erasure: { passed: boolean } | null;
    restoreSeconds: number | null;
    totalSeconds: number;
  } | null;
}

interface BackupResult {
  id: string;
  type: string;
  kind: string;
  label: string | null;
  /** POST to the row leaving `running`, seen by the client */
  wallSeconds: number;
  /** the service's durationMs: pgBackRest + manifest */
  serviceSeconds: number | null;
  /** pgBackRest's own start/stop of the set */
  pgbackrestSeconds: number | null;
  sizeBytes: number | null;
  repoSizeBytes: number | null;
  manifestExact: boolean | null;
}

async function takeBackup(
  a: Api,
  env: StackEnv,
  type: 'full' | 'diff',
  timeoutS: number,
): Promise<BackupResult> {
  log(`POST /v1/backups {type: ${type}}`);
  const t0 = performance.now();
  const { id } = await a.call<{ id: string }>('POST', '/v1/backups', { type }, 202);
  let b: BackupDto;
  for (;;) {
    b = await a.call<BackupDto>('GET', `/v1/backups/${id}`);
    if (b.status !== 'running') {
      break;
    }
    if (performance.now() - t0 > timeoutS * 1000) {
      throw new Error(`backup ${id} still running after ${timeoutS}s`);
    }
    await sleep(500);
  }
  const wall = (performance.now() - t0) / 1000;
  if (b.status !== 'succeeded') {
    throw new Error(`backup ${id} ${b.status}: ${b.error ?? '(no error)'}`);
  }
  const info = await repoInfo(env);
  const set = info.sets.find((s) => s.label === b.label);
  log(
    `${type} backup ${b.label}: ${wall.toFixed(1)}s, size ${mib(b.sizeBytes)}, in the repository ${mib(b.repoSizeBytes)}`,
  );
  return {
    id,
    type: b.type,
    kind: b.kind,
    label: b.label,
    wallSeconds: round(wall, 1),
    serviceSeconds: b.durationMs === null ? null : round(b.durationMs / 1000, 1),
    pgbackrestSeconds: set ? set.seconds : null,
    sizeBytes: b.sizeBytes,
    repoSizeBytes: b.repoSizeBytes,
    manifestExact: b.manifest?.exact ?? null,
  };
}

// ---------------------------------------------------------------------------
// 1 % of the rows changed: new embeddings (the HNSW index takes the new vectors) and titles

async function changeRows(
  env: StackEnv,
  fraction: number,
  model: EmbeddingModel,
  seed: number,
): Promise<{ rows: number; seconds: number }> {
  const [rows, seconds] = await timed(() =>
    withClient(clientConfig(env, env.primary), async (c) => {
      // exactly round(fraction x rows), spread over the table, other rows on every run (a
      // seeded TABLESAMPLE would pick the same tuple positions again: the versions the last
      // run left dead)
      const { rows: ids } = await c.query<{ id: string }>(
        `SELECT id::text AS id FROM recipes
          ORDER BY md5(id::text || $1::text)
          LIMIT (SELECT round(count(*) * $2::float8) FROM recipes)`,
        [String(seed), fraction],
      );
      const rng = new Rng(seed);
      const v = new Float32Array(model.params.dims);
      const stamp = new Date().toISOString();
      for (let i = 0; i < ids.length; i += 200) {
        const batch = ids.slice(i, i + 200);
        const vectors = batch.map(() => {
          model.sample(rng, v);
          return `[${Array.from(v, (x) => Number(x.toPrecision(8))).join(',')}]`;
        });
        await c.query(
          `UPDATE recipes r SET embedding = u.v::vector, title = left(r.title, 180) || ' (edited ' || $3 || ')'
             FROM unnest($1::uuid[], $2::text[]) AS u(id, v) WHERE r.id = u.id`,
          [batch.map((b) => b.id), vectors, stamp],
        );
      }
      return ids.length;
    }),
  );
  log(`changed ${rows} rows (${(100 * fraction).toFixed(2)} %) in ${seconds.toFixed(1)}s`);
  return { rows, seconds: round(seconds, 1) };
}

// ---------------------------------------------------------------------------
// The validation, and a look at the scratch instance while it runs

interface ScratchProbe {
  port: number | null;
  /** the vector search of the validation's performance check, EXPLAIN ANALYZE on the copy */
  plan: string | null;
  usesHnsw: boolean | null;
  executionMs: number | null;
  /** the restored index file is the live one (same relfilenode: not rebuilt) */
  sameRelfilenode: boolean | null;
  indexValid: boolean | null;
  recallAt10: number | null;
  error: string | null;
}

async function probeScratch(
  env: StackEnv,
  validationId: string,
  done: () => boolean,
): Promise<ScratchProbe> {
  const probe: ScratchProbe = {
    port: null,
    plan: null,
    usesHnsw: null,
    executionMs: null,
    sameRelfilenode: null,
    indexValid: null,
    recallAt10: null,
    error: null,
  };
  const live = await withClient(clientConfig(env, env.primary), async (c) => {
    const { rows } = await c.query<{ f: string; e: string; id: string }>(
      `SELECT pg_relation_filenode($1::regclass)::text AS f,
              (SELECT embedding::text FROM recipes ORDER BY id LIMIT 1) AS e,
              (SELECT id::text FROM recipes ORDER BY id LIMIT 1) AS id`,
      [HNSW_INDEX],
    );
    return rows[0];
  });
  while (!done()) {
    if (probe.port === null) {
      const { rows } = await withClient(clientConfig(env, env.primary), (c) =>
        c.query<{ port: number | null }>(
          `SELECT scratch_port AS port FROM backup_validations WHERE id = $1`,
          [validationId],
        ),
      );
      probe.port = rows[0]?.port ?? null;
    }
    if (probe.port !== null) {
      const c = new pg.Client({
        ...clientConfig(env, { host: '127.0.0.1', port: probe.port }),
        application_name: 'bench:backup probe',
        connectionTimeoutMillis: 2_000,
      });
      c.on('error', () => undefined);
      try {
        await c.connect();
        const rec = await c.query<{ r: boolean }>(`SELECT pg_is_in_recovery() AS r`);
        if (!rec.rows[0].r) {
          const idx = await c.query<{ f: string; valid: boolean }>(
            `SELECT pg_relation_filenode(c.oid)::text AS f, i.indisvalid AND i.indisready AS valid
               FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = $1`,
            [HNSW_INDEX],
          );
          probe.sameRelfilenode = idx.rows[0]?.f === live.f;
          probe.indexValid = idx.rows[0]?.valid ?? false;
          // the performance check's statement, with the same defaults
          const sql = `SELECT id FROM recipes WHERE embedding IS NOT NULL ORDER BY embedding <=> $1::vector LIMIT 10`;
          const ex = await c.query<{ 'QUERY PLAN': string }>(
            `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ${sql}`,
            [live.e],
          );
          // the 1536 numbers of the query vector left out of the stored plan
          probe.plan = ex.rows
            .map((r) => r['QUERY PLAN'])
            .join('\n')
            .replace(/'\[[^\]]*\]'::vector/g, "'[1536 numbers]'::vector");
          probe.usesHnsw = probe.plan.includes(`Index Scan using ${HNSW_INDEX}`);
          const m = /Execution Time: ([\d.]+) ms/.exec(probe.plan);
          probe.executionMs = m ? Number(m[1]) : null;
          const ann = await c.query<{ id: string }>(sql, [live.e]);
          await c.query('BEGIN READ ONLY');
          await c.query('SET LOCAL enable_indexscan = off');
          const exact = await c.query<{ id: string }>(sql, [live.e]);
          await c.query('COMMIT');
          const truth = new Set(exact.rows.map((r) => r.id));
          probe.recallAt10 =
            ann.rows.filter((r) => truth.has(r.id)).length / Math.max(1, truth.size);
          log(
            `scratch :${probe.port}: vector search ${probe.usesHnsw ? 'on the HNSW index' : 'WITHOUT the HNSW index'} ` +
              `(${probe.executionMs} ms, recall@10 ${probe.recallAt10}), index file ${probe.sameRelfilenode ? 'as restored (same relfilenode)' : 'differs'}`,
          );
          return probe;
        }
      } catch (err) {
        probe.error = (err as Error).message; // not up yet, or gone: try again
      } finally {
        await c.end().catch(() => undefined);
      }
    }
    await sleep(1_000);
  }
  return probe;
}

interface ValidationResult {
  id: string;
  status: string;
  error: string | null;
  wallSeconds: number;
  totalSeconds: number | null;
  restoreSeconds: number | null;
  checks: Record<string, { passed: boolean; details: Record<string, unknown> }>;
  erasurePassed: boolean | null;
  probe: ScratchProbe;
}

async function validate(
  a: Api,
  env: StackEnv,
  backupId: string,
  timeoutS: number,
): Promise<ValidationResult> {
  log(`POST /v1/backups/${backupId}/validations`);
  const t0 = performance.now();
  const { id } = await a.call<{ id: string }>(
    'POST',
    `/v1/backups/${backupId}/validations`,
    undefined,
    202,
  );
  let finished = false;
  const probing = probeScratch(env, id, () => finished);
  let v: ValidationDto;
  let last = '';
  try {
    for (;;) {
      v = await a.call<ValidationDto>('GET', `/v1/backup-validations/${id}`);
      if (v.status !== 'running') {
        break;
      }
      if (performance.now() - t0 > timeoutS * 1000) {
        throw new Error(`validation ${id} still running after ${timeoutS}s`);
      }
      const s = ((performance.now() - t0) / 1000).toFixed(0);
      if (s !== last && Number(s) % 15 === 0) {
        log(`validation running, ${s}s`);
      }
      last = s;
      await sleep(500);
    }
  } finally {
    finished = true;
  }
  const wall = (performance.now() - t0) / 1000;
  const probe = await probing;
  const checks: ValidationResult['checks'] = {};
  for (const c of v.report?.checks ?? []) {
    checks[c.type] = { passed: c.passed, details: c.details };
  }
  log(`validation ${v.status} in ${wall.toFixed(1)}s${v.error ? `: ${v.error}` : ''}`);
  return {
    id,
    status: v.status,
    error: v.error,
    wallSeconds: round(wall, 1),
    totalSeconds: v.report ? round(v.report.totalSeconds, 1) : null,
    restoreSeconds:
      v.report?.restoreSeconds === null || v.report?.restoreSeconds === undefined
        ? null
        : round(v.report.restoreSeconds, 1),
    checks,
    erasurePassed: v.report?.erasure?.passed ?? null,
    probe,
  };
}

// ---------------------------------------------------------------------------
// Output

const mib = (bytes: number | null): string =>
  bytes === null ? '?' : `${(bytes / 2 ** 20).toFixed(0)} MiB`;

interface Report {
  benchmark: 'backup';
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  parameters: Options & { database: string; dims: number };
  dataset: { load: LoadInfo; before: Sizes; after: Sizes };
  results: {
    full: BackupResult;
    /** `seed` picks the rows (md5 order) and draws their new embeddings */
    change: { rows: number; fraction: number; seed: number; seconds: number };
    diff: BackupResult;
    validation: ValidationResult;
    repository: Awaited<ReturnType<typeof repoInfo>>;
    serviceBootS: number;
  };
  targets: Target[];
  phasesS: Record<string, number>;
  loadAverage1mAfterPhase: Record<string, number>;
}

function evaluateTargets(r: Report['results'], rtoS: number): Target[] {
  const v = r.validation;
  const rto = v.checks.recovery_time_measurement?.details.rtoMeasuredSeconds;
  const measured = typeof rto === 'number' ? rto : (v.totalSeconds ?? v.wallSeconds);
  const vq = v.checks.data_integrity_check?.details;
  const perf = (v.checks.performance_validation?.details.queries ?? []) as Array<{
    query: string;
    scratchMs: number;
    liveMs: number;
    passed: boolean;
  }>;
  const vs = perf.find((q) => q.query === 'vector_search');
  return [
    {
      name: 'validation end to end (restore + every check), measured RTO',
      target: `<= ${rtoS} s`,
      value: `${measured.toFixed(1)} s`,
      pass: measured <= rtoS,
    },
    {
      name: 'validation passed (all four checks + erasure re-application)',
      target: 'passed',
      value: v.status,
      pass: v.status === 'passed',
    },
    {
      name: 'restored HNSW index valid, vector queries of the manifest match',
      target: 'valid, 0 mismatches',
      value: `${JSON.stringify(vq?.hnswIndex ?? null)}, ${Array.isArray(vq?.vectorMismatches) ? vq.vectorMismatches.length : '?'} mismatches of ${typeof vq?.vectorQueries === 'number' ? vq.vectorQueries : '?'}`,
      pass:
        Array.isArray(vq?.vectorMismatches) &&
        vq.vectorMismatches.length === 0 &&
        Array.isArray(vq?.hnswIndex) &&
        (vq.hnswIndex as Array<{ valid: boolean }>).some((i) => i.valid),
    },
    {
      name: 'restored HNSW index serves queries without a rebuild',
      target: 'Index Scan on the HNSW index, same relfilenode',
      value:
        v.probe.usesHnsw === null
          ? `not observed (${v.probe.error ?? 'the scratch instance was never reachable'})`
          : `${v.probe.usesHnsw ? 'HNSW index scan' : 'no index scan'}, ${v.probe.executionMs} ms, recall@10 ${v.probe.recallAt10}, ${v.probe.sameRelfilenode ? 'same' : 'other'} relfilenode`,
      pass: v.probe.usesHnsw === true && v.probe.sameRelfilenode === true,
    },
    {
      name: 'vector search on the copy within the performance tolerance',
      target: 'performance_validation passed',
      value: vs ? `scratch ${vs.scratchMs} ms, live ${vs.liveMs} ms` : 'not run',
      pass: vs?.passed === true,
    },
  ];
}

function render(report: Report): string {
  const r = report.results;
  const out: string[] = [];
  const d = report.dataset.before;
  out.push(
    `Backups of ${d.rows.toLocaleString('en')} recipes x ${EMBEDDING_DIMENSIONS} d with the HNSW index: ` +
      `database ${mib(d.databaseBytes)}, cluster ${mib(d.clusterBytes)} (pgBackRest backs up the cluster)`,
  );
  out.push(
    table(
      ['step', 'wall s', 'service s', 'pgBackRest s', 'size', 'in repository'],
      [
        [
          `full (${r.full.label ?? '?'})`,
          r.full.wallSeconds.toFixed(1),
          String(r.full.serviceSeconds ?? '?'),
          String(r.full.pgbackrestSeconds ?? '?'),
          mib(r.full.sizeBytes),
          mib(r.full.repoSizeBytes),
        ],
        [
          `change ${r.change.rows} rows (${(100 * r.change.fraction).toFixed(2)} %)`,
          r.change.seconds.toFixed(1),
          '',
          '',
          '',
          '',
        ],
        [
          `diff (${r.diff.label ?? '?'})`,
          r.diff.wallSeconds.toFixed(1),
          String(r.diff.serviceSeconds ?? '?'),
          String(r.diff.pgbackrestSeconds ?? '?'),
          mib(r.diff.sizeBytes),
          mib(r.diff.repoSizeBytes),
        ],
        [
          `validation of the diff (${r.validation.status})`,
          r.validation.wallSeconds.toFixed(1),
          String(r.validation.totalSeconds ?? '?'),
          '',
          '',
          '',
        ],
      ],
    ),
  );
  out.push('');
  const c = r.validation.checks;
  const rows = Object.entries(c).map(([name, check]) => [
    name,
    check.passed ? 'passed' : 'FAILED',
    (
      JSON.stringify(
        name === 'recovery_time_measurement'
          ? check.details
          : name === 'performance_validation'
            ? check.details.queries
            : name === 'data_integrity_check'
              ? {
                  tables: check.details.tables,
                  hnswIndex: check.details.hnswIndex,
                  vectorQueries: check.details.vectorQueries,
                  problems: check.details.problems,
                }
              : {
                  checkpointLsn: check.details.checkpointLsn,
                  reached: check.details.reachedConsistencyPoint,
                },
      ) ?? ''
    ).slice(0, 160),
  ]);
  out.push(
    `Validation: restore ${r.validation.restoreSeconds ?? '?'} s, total ${r.validation.totalSeconds ?? '?'} s`,
  );
  out.push(table(['check', 'result', 'details'], rows));
  out.push('');
  out.push(
    `Repository: ${r.repository.sets.length} sets, ${mib(r.repository.repoDirBytes)} on disk, of which WAL archive ${mib(r.repository.archiveBytes)}`,
  );
  out.push('');
  out.push('Targets');
  out.push(targetsTable(report.targets));
  return out.join('\n');
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const phases: Record<string, number> = {};
  const loadAverage: Record<string, number> = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`--- ${name}`);
    const [result, s] = await timed(fn);
    phases[name] = round(s, 1);
    loadAverage[name] = round(os.loadavg()[0], 2);
    return result;
  };

  let own: BenchStack | null = null;
  if (opts.ownStack) {
    const stack = new BenchStack(REPO_DIR, 'bench-backup', OWN_STACK_PORTS, '128MB');
    own = stack;
    await phase('own stack up', () => stack.run('up'));
    // loadStackEnv and bench:search's loader (a child process) read the stack from here
    Object.assign(process.env, {
      STACK_DIR: stack.dir,
      STACK_PG_PRIMARY_PORT: String(OWN_STACK_PORTS.primary),
      STACK_PG_REPLICA_PORT: String(OWN_STACK_PORTS.replica),
      STACK_PGBOUNCER_PORT: String(OWN_STACK_PORTS.pgbouncer),
      STACK_REDIS_PORT: String(OWN_STACK_PORTS.redis),
      STACK_PG_SHARED_BUFFERS: '128MB',
    });
  }
  try {
    await run(opts, phase, phases, loadAverage);
  } finally {
    if (own) {
      await own.run('down').catch((err: Error) => log(`own stack down failed: ${err.message}`));
      await rm(own.dir, { recursive: true, force: true });
    }
  }
}

async function run(
  opts: Options,
  phase: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  phases: Record<string, number>,
  loadAverage: Record<string, number>,
): Promise<void> {
  const startedAt = new Date().toISOString();
  const env = await loadStackEnv(REPO_DIR);
  log(`primary ${env.primary.host}:${env.primary.port}, database ${BENCH_DB}`);
  let load = await loadedRows(env);
  if (opts.load || !load || load.rows !== opts.rows) {
    await phase('load (bench:search loader)', () => loadWithSearchBench(opts));
    load = await loadedRows(env);
    if (!load) {
      throw new Error(`the load finished but ${BENCH_DB} holds no complete data set`);
    }
    load.loadedByThisRun = true;
  } else {
    log(`reusing the ${load.rows} rows loaded ${load.loadedAt} (--load to reload)`);
  }
  const model = new EmbeddingModel({
    ...DEFAULT_DATASET,
    seed: opts.seed,
    dims: EMBEDDING_DIMENSIONS,
  });
  const before = await sizes(env);
  const machine = await machineInfo(env);

  const secret = randomBytes(24).toString('hex');
  // a fixed port below the ephemeral range (README), unless --port 0
  const port = opts.port || (await freePort());
  const service = ServiceProcess.start(
    REPO_DIR,
    {
      ...env.vars,
      NODE_ENV: 'production',
      DB_NAME: BENCH_DB,
      API_KEYS: JSON.stringify([
        {
          id: 'bench-backup',
          hash: createHash('sha256').update(secret, 'utf8').digest('hex'),
          scopes: ['backup:admin'],
        },
      ]),
      RATE_LIMIT_LIMIT: '10000000',
      LOG_LEVEL: 'warn',
      JOBS_ENABLED: 'false',
      DB_MIGRATIONS_RUN: 'false',
      SHUTDOWN_DRAIN_MS: '0',
      BACKUP_PROVIDER: 'pgbackrest',
      // the target, judged by the validation's own recovery_time_measurement
      BACKUP_RTO_SECONDS: String(opts.rtoS),
      ...(process.env.BACKUP_SCRATCH_PORTS
        ? { BACKUP_SCRATCH_PORTS: process.env.BACKUP_SCRATCH_PORTS }
        : {}),
      ...(process.env.BACKUP_SCRATCH_DIR
        ? { BACKUP_SCRATCH_DIR: process.env.BACKUP_SCRATCH_DIR }
        : {}),
    },
    port,
  );
  const client = new HttpClient('127.0.0.1', port, 2);
  const a = api(client, secret);
  let report: Report;
  try {
    const bootS = await service.waitReady(client, 120_000);
    log(`service ready on :${port} (pid ${service.pid}) after ${bootS.toFixed(1)}s`);
    const full = await phase('full backup', () => takeBackup(a, env, 'full', opts.timeoutS));
    const changeSeed = randomBytes(4).readUInt32BE(0) % 2 ** 31;
    const change = await phase('change rows', () =>
      changeRows(env, opts.changeFraction, model, changeSeed),
    );
    const diff = await phase('diff backup', () => takeBackup(a, env, 'diff', opts.timeoutS));
    const validation = await phase('validation', () => validate(a, env, diff.id, opts.timeoutS));
    const repository = await repoInfo(env);
    const results: Report['results'] = {
      full,
      change: {
        rows: change.rows,
        fraction: opts.changeFraction,
        seed: changeSeed,
        seconds: change.seconds,
      },
      diff,
      validation,
      repository,
      serviceBootS: round(bootS, 1),
    };
    report = {
      benchmark: 'backup',
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      parameters: { ...opts, database: BENCH_DB, dims: EMBEDDING_DIMENSIONS },
      dataset: { load, before, after: await sizes(env) },
      results,
      targets: evaluateTargets(results, opts.rtoS),
      phasesS: phases,
      loadAverage1mAfterPhase: loadAverage,
    };
  } catch (err) {
    log(`service output:\n${service.output()}`);
    throw err;
  } finally {
    client.close();
    await service.stop();
  }
  const file = await writeReport('backup', report.startedAt, opts.tag, report);
  process.stdout.write(
    `${render(report)}\n\nphases (s): ${JSON.stringify(phases)}\nload average (1 min) after each phase: ${JSON.stringify(loadAverage)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
  );
}

runBench('backup', main);
