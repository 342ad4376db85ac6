/**
 * Cache benchmark: a Zipf read workload over GET /v1/recipes/:id with the two-level
 * cache on and off, the in-process latency of an L1 hit, an L2 hit and a database
 * read, and what the recipes' write-behind queue loses when Redis is SIGKILLed.
 * Runs on its own database (`dbu_bench_cache`) of the local stack.
 *
 *   npm run bench:cache -- [--recipes 10000] [--warmup-s 15] [--duration-s 15] [--concurrency 8]
 *
 * Progress goes to stderr, the result table to stdout, everything to
 * bench/results/cache-<date>.json. See bench/README.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  CACHE_BENCH_DB,
  cacheDbConfig,
  ensureCacheDatabase,
  flushBenchKeys,
  loadRecipes,
  migrateCacheDatabase,
  otherBenchmarkRunning,
  serverVersions,
  waitForReplica,
  type Versions,
} from './lib/cache-data.js';
import { controlRun, killRun, type DurabilityRun } from './lib/cache-durability.js';
import {
  ensureEmbeddings,
  mixedLoop,
  searchBodies,
  searchCacheCounts,
  type MixedLoopResult,
  type SearchCacheCounts,
  type WriteKind,
} from './lib/cache-search.js';
import { measureInProcess, type InProcessResult } from './lib/cache-inprocess.js';
import {
  closedLoop,
  metricSum,
  parseMetrics,
  Zipf,
  type LoopResult,
  type Sample,
} from './lib/cache-workload.js';
import { hostInfo } from './lib/machine.js';
import { STAGES, stageBudget, type StageBudget } from './lib/stage-profile.js';
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
import { log, timed } from './lib/progress.js';
import { runBench, writeReport } from './lib/paths.js';
import { Rng } from './lib/rng.js';
import { HttpClient, ServiceProcess, freePort } from './lib/service.js';
import { loadStackEnv, withClient, type StackEnv } from './lib/stack.js';
import { round } from './lib/stats.js';
import { table, targetsTable, type Target } from './lib/text-table.js';

const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE_TYPE = 'recipes';

// ---------------------------------------------------------------------------
// Options

interface Options {
  recipes: number;
  skipLoad: boolean;
  seed: number;
  zipfS: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  inprocIterations: number;
  inprocIds: number;
  wbUpdates: number;
  wbRate: number;
  wbSettleS: number;
  wbProbe: number;
  flushMs: number;
  skipHttp: boolean;
  /** `--skip-bare`: no run of the bare NestJS + Fastify route (issue 14, target 3) */
  skipBare: boolean;
  /**
   * `--bare-rounds N`: besides the single runs, the cached GET, the bare route and the
   * uncached GET all up at once and measured in N rounds of `--duration-s` each, in a
   * rotated order; targets take the median of the rounds' ratios (this VM's throughput
   * drifts between runs minutes apart by more than the gaps being measured). 0: off.
   */
  bareRounds: number;
  /** `--stage-profile`: one more cached run under `--cpu-prof`, its CPU by stage */
  stageProfile: boolean;
  skipInproc: boolean;
  skipDurability: boolean;
  noKill: boolean;
  tag: string;
  searchRecipes: number;
  searchQueries: number;
  mixedWriteShare: number;
  mixedWarmupS: number;
  mixedDurationS: number;
  skipMixed: boolean;
  baselineDir: string;
  monitoringAb: boolean;
  /** `--tls-ab`: the same A/B with TLS off versus on (issue 13) */
  tlsAb: boolean;
  abRounds: number;
  /** `--ab-paired`: both sides at once in every round, sharing the service's CPU(s) */
  abPaired: boolean;
  abIdleS: number;
  abCloudwatchIntervalS: number;
  abOnly: AbComponent | null;
  /** RATE_LIMIT_STORE of the service: `redis` (the default, one INCR per request) or `memory`. */
  rateLimitStore: 'redis' | 'memory';
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      recipes: { type: 'string', default: '10000' },
      'skip-load': { type: 'boolean', default: false },
      seed: { type: 'string', default: '20261126' },
      'zipf-s': { type: 'string', default: '1.1' },
      concurrency: { type: 'string', default: '8' },
      'warmup-s': { type: 'string', default: '15' },
      'duration-s': { type: 'string', default: '15' },
      'inproc-iterations': { type: 'string', default: '20000' },
      'inproc-ids': { type: 'string', default: '1000' },
      'wb-updates': { type: 'string', default: '500' },
      'wb-rate': { type: 'string', default: '100' },
      'wb-settle-s': { type: 'string', default: '5' },
      'wb-probe': { type: 'string', default: '20' },
      'flush-ms': { type: 'string', default: '1000' },
      'skip-http': { type: 'boolean', default: false },
      'skip-bare': { type: 'boolean', default: false },
      'bare-rounds': { type: 'string', default: '0' },
      'stage-profile': { type: 'boolean', default: false },
      'skip-inproc': { type: 'boolean', default: false },
      'skip-durability': { type: 'boolean', default: false },
      'no-kill': { type: 'boolean', default: false },
      tag: { type: 'string', default: '' },
      'search-recipes': { type: 'string', default: '2000' },
      'search-queries': { type: 'string', default: '1000' },
      'mixed-write-share': { type: 'string', default: '0.05' },
      'mixed-warmup-s': { type: 'string', default: '10' },
      'mixed-duration-s': { type: 'string', default: '20' },
      'skip-mixed': { type: 'boolean', default: false },
      'baseline-dir': { type: 'string', default: '' },
      'monitoring-ab': { type: 'boolean', default: false },
      'tls-ab': { type: 'boolean', default: false },
      'ab-rounds': { type: 'string', default: '8' },
      'ab-paired': { type: 'boolean', default: false },
      'ab-idle-s': { type: 'string', default: '20' },
      'ab-cloudwatch-interval-s': { type: 'string', default: '5' },
      'ab-only': { type: 'string', default: 'all' },
      'rate-limit-store': { type: 'string', default: 'redis' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:cache -- [--recipes 10000] [--skip-load] [--seed N] [--zipf-s 1.1]\n' +
        '  [--concurrency 8] [--warmup-s 15] [--duration-s 15]\n' +
        '  [--inproc-iterations 20000] [--inproc-ids 1000]\n' +
        '  [--wb-updates 500] [--wb-rate 100] [--wb-settle-s 5] [--wb-probe 20] [--flush-ms 1000]\n' +
        '  [--skip-http] [--skip-bare] [--bare-rounds N] [--stage-profile] [--skip-inproc] [--skip-durability] [--no-kill]\n' +
        '  [--search-recipes 2000] [--search-queries 1000] [--mixed-write-share 0.05]\n' +
        '  [--mixed-warmup-s 10] [--mixed-duration-s 20] [--skip-mixed] [--baseline-dir DIR]\n' +
        '  [--rate-limit-store redis|memory]\n' +
        '  [--monitoring-ab [--ab-rounds 8] [--ab-paired] [--ab-idle-s 20] [--ab-cloudwatch-interval-s 5]\n' +
        '    [--ab-only all|sampler|insights|dashboard|alerting|cloudwatch]]\n' +
        '  [--tls-ab (the same rounds with TLS off versus on; needs STACK_TLS_ONLY=0 bash docker/stack.sh up)]\n' +
        '  [--tag NAME (results file cache-<date>-NAME.json)]\n',
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
  const zipfS = Number(values['zipf-s']);
  if (!Number.isFinite(zipfS) || zipfS <= 0 || zipfS > 5) {
    throw new Error(`--zipf-s must be a number in (0, 5], got '${values['zipf-s']}'`);
  }
  const writeShare = Number(values['mixed-write-share']);
  if (!Number.isFinite(writeShare) || writeShare <= 0 || writeShare >= 1) {
    throw new Error(
      `--mixed-write-share must be a number in (0, 1), got '${values['mixed-write-share']}'`,
    );
  }
  if (!/^[a-z0-9-]{0,40}$/.test(values.tag)) {
    throw new Error(`--tag must be lowercase letters, digits and dashes, got '${values.tag}'`);
  }
  const opts: Options = {
    recipes: int('recipes', values.recipes, 100, 5_000_000),
    skipLoad: values['skip-load'],
    seed: int('seed', values.seed, 0, 2 ** 31),
    zipfS,
    concurrency: int('concurrency', values.concurrency, 1, 256),
    warmupS: int('warmup-s', values['warmup-s'], 0, 3600),
    durationS: int('duration-s', values['duration-s'], 1, 3600),
    inprocIterations: int('inproc-iterations', values['inproc-iterations'], 10, 10_000_000),
    inprocIds: int('inproc-ids', values['inproc-ids'], 1, 100_000),
    wbUpdates: int('wb-updates', values['wb-updates'], 1, 100_000),
    wbRate: int('wb-rate', values['wb-rate'], 1, 10_000),
    wbSettleS: int('wb-settle-s', values['wb-settle-s'], 1, 600),
    wbProbe: int('wb-probe', values['wb-probe'], 0, 10_000),
    flushMs: int('flush-ms', values['flush-ms'], 10, 600_000),
    skipHttp: values['skip-http'],
    skipBare: values['skip-bare'],
    bareRounds: int('bare-rounds', values['bare-rounds'], 0, 64),
    stageProfile: values['stage-profile'],
    skipInproc: values['skip-inproc'],
    skipDurability: values['skip-durability'],
    noKill: values['no-kill'],
    tag: values.tag,
    searchRecipes: int('search-recipes', values['search-recipes'], 100, 1_000_000),
    searchQueries: int('search-queries', values['search-queries'], 10, 100_000),
    mixedWriteShare: writeShare,
    mixedWarmupS: int('mixed-warmup-s', values['mixed-warmup-s'], 0, 3600),
    mixedDurationS: int('mixed-duration-s', values['mixed-duration-s'], 1, 3600),
    skipMixed: values['skip-mixed'],
    baselineDir: values['baseline-dir'] ? path.resolve(values['baseline-dir']) : '',
    monitoringAb: values['monitoring-ab'],
    tlsAb: values['tls-ab'],
    abRounds: int('ab-rounds', values['ab-rounds'], 2, 64),
    abPaired: values['ab-paired'],
    abIdleS: int('ab-idle-s', values['ab-idle-s'], 0, 3600),
    abCloudwatchIntervalS: int(
      'ab-cloudwatch-interval-s',
      values['ab-cloudwatch-interval-s'],
      1,
      3600,
    ),
    abOnly: parseAbOnly(values['ab-only']),
    rateLimitStore: parseRateLimitStore(values['rate-limit-store']),
  };
  if (opts.baselineDir && !existsSync(path.join(opts.baselineDir, 'dist/src/main.js'))) {
    throw new Error(
      `--baseline-dir: ${opts.baselineDir}/dist/src/main.js is missing (build it there)`,
    );
  }
  if (
    !opts.monitoringAb &&
    !opts.tlsAb &&
    !opts.skipDurability &&
    2 * opts.wbUpdates + opts.wbProbe > opts.recipes
  ) {
    throw new Error('--recipes must be at least 2 x --wb-updates + --wb-probe (distinct recipes)');
  }
  return opts;
}

// ---------------------------------------------------------------------------
// The service under test

interface Running {
  service: ServiceProcess;
  http: HttpClient;
  load: HttpClient;
  auth: Record<string, string>;
  bootS: number;
}

function parseRateLimitStore(value: string): 'redis' | 'memory' {
  if (value !== 'redis' && value !== 'memory') {
    throw new Error(`--rate-limit-store must be redis or memory, got ${value}`);
  }
  return value;
}

/** What the service gets besides the stack's settings (HTTP runs add an API key). */
function serviceEnv(env: StackEnv, opts: Options, cacheEnabled: boolean): Record<string, string> {
  return {
    ...env.vars,
    NODE_ENV: 'production',
    DB_NAME: CACHE_BENCH_DB,
    // the schema's maximum: the limiter stays in the path but never answers 429
    RATE_LIMIT_LIMIT: '10000000',
    RATE_LIMIT_STORE: opts.rateLimitStore,
    LOG_LEVEL: 'warn',
    JOBS_ENABLED: 'false',
    DB_MIGRATIONS_RUN: 'false',
    SHUTDOWN_DRAIN_MS: '0',
    CACHE_ENABLED: String(cacheEnabled),
    CACHE_WRITE_BEHIND_FLUSH_MS: String(opts.flushMs),
  };
}

async function startService(
  env: StackEnv,
  opts: Options,
  cacheEnabled: boolean,
  serviceDir = REPO_DIR,
  extraEnv: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<Running> {
  const removed = await flushBenchKeys(env.vars);
  log(`redis: unlinked ${removed} keys of ${CACHE_BENCH_DB}`);
  const secret = randomBytes(24).toString('hex');
  const hash = createHash('sha256').update(secret, 'utf8').digest('hex');
  const port = await freePort();
  const service = ServiceProcess.start(
    serviceDir,
    {
      ...serviceEnv(env, opts, cacheEnabled),
      ...extraEnv,
      API_KEYS: JSON.stringify([
        { id: 'bench-cache', hash, scopes: ['recipes:read', 'recipes:write'] },
      ]),
    },
    port,
    'dist/src/main.js',
    nodeArgs,
  );
  const http = new HttpClient('127.0.0.1', port, 32);
  const load = new HttpClient('127.0.0.1', port, opts.concurrency);
  try {
    const bootS = await service.waitReady(http, 120_000);
    log(
      `service (cache ${cacheEnabled ? 'on' : 'off'}) ready on :${port} (pid ${service.pid}) after ${bootS.toFixed(1)}s`,
    );
    return { service, http, load, auth: { authorization: `Bearer ${secret}` }, bootS };
  } catch (err) {
    http.close();
    load.close();
    await service.stop();
    throw err;
  }
}

async function stopService(r: Running): Promise<void> {
  r.http.close();
  r.load.close();
  await r.service.stop();
  log('service stopped');
}

/** Busy and total jiffies of all CPUs (Linux); null elsewhere. */
async function machineCpu(): Promise<{ busy: number; total: number } | null> {
  let stat: string;
  try {
    stat = await readFile('/proc/stat', 'utf8');
  } catch (err) {
    log(`/proc/stat unreadable: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
  const f = (/^cpu\s+(.*)$/m.exec(stat)?.[1] ?? '').split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

async function scrape(client: HttpClient): Promise<Sample[]> {
  const res = await client.request('GET', '/metrics');
  if (res.status !== 200) {
    throw new Error(`GET /metrics answered ${res.status}`);
  }
  return parseMetrics(res.body);
}

// ---------------------------------------------------------------------------
// HTTP phase

interface TierCounts {
  l1Hits: number;
  l1Misses: number;
  l2Hits: number;
  l2Misses: number;
}

interface HitRates {
  counts: TierCounts;
  /** share of GETs answered by L1 */
  l1: number | null;
  /** share of L1 misses answered by L2 */
  l2: number | null;
  /** share of GETs answered by either tier */
  overall: number | null;
  /** share of GETs for an id requested before in this run: the best any cache could do */
  ideal: number;
}

interface CpuUse {
  /** CPU cores the service process used on average (process_cpu_seconds_total) */
  serviceCores: number;
  /** service CPU time per completed request */
  serviceUsPerRequest: number;
  /** CPU cores the load generator (this process) used on average */
  clientCores: number;
  /** CPU cores busy on the whole machine (/proc/stat): the rest is PostgreSQL, Redis and anything else */
  machineCores: number | null;
}

interface HttpRun {
  cacheEnabled: boolean;
  bootS: number;
  warmup: LoopResult | null;
  measured: LoopResult;
  hitRates: HitRates;
  cpu: CpuUse;
  responseBytes: number;
  /** the first answer's body: the bare route answers with the same */
  sampleBody: string;
}

function tierCounts(before: Sample[], after: Sample[]): TierCounts {
  const d = (name: string, tier: string): number =>
    metricSum(after, name, { tier, type: CACHE_TYPE }) -
    metricSum(before, name, { tier, type: CACHE_TYPE });
  return {
    l1Hits: d('cache_hits_total', 'l1'),
    l1Misses: d('cache_misses_total', 'l1'),
    l2Hits: d('cache_hits_total', 'l2'),
    l2Misses: d('cache_misses_total', 'l2'),
  };
}

function hitRates(c: TierCounts, measured: LoopResult): HitRates {
  const ratio = (a: number, b: number): number | null => (b > 0 ? round(a / b, 4) : null);
  const lookups = c.l1Hits + c.l1Misses;
  return {
    counts: c,
    l1: ratio(c.l1Hits, lookups),
    l2: ratio(c.l2Hits, c.l2Hits + c.l2Misses),
    overall: ratio(c.l1Hits + c.l2Hits, lookups),
    ideal: round(1 - measured.firstTouches / Math.max(1, measured.completed), 4),
  };
}

async function httpRun(
  env: StackEnv,
  opts: Options,
  byRank: readonly string[],
  cacheEnabled: boolean,
  serviceDir = REPO_DIR,
  /** run the service under `--cpu-prof`, writing its profile here */
  profileDir?: string,
): Promise<HttpRun> {
  const r = await startService(
    env,
    opts,
    cacheEnabled,
    serviceDir,
    {},
    profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  );
  try {
    const first = await r.http.request('GET', `/v1/recipes/${byRank[0]}`, undefined, r.auth);
    if (first.status !== 200 || (JSON.parse(first.body) as { id?: string }).id !== byRank[0]) {
      throw new Error(`GET /v1/recipes/${byRank[0]} answered ${first.status}: ${first.body}`);
    }
    // the same seeded id sequence for both runs
    const zipf = new Zipf(byRank.length, opts.zipfS);
    const rng = new Rng(opts.seed ^ 0x5bd1e995);
    const next = (): string => byRank[zipf.sample(rng)];
    const send = async (id: string): Promise<number> =>
      (await r.load.request('GET', `/v1/recipes/${id}`, undefined, r.auth)).status;
    const seen = new Set<string>([byRank[0]]);
    const label = `cache ${cacheEnabled ? 'on' : 'off'}${serviceDir === REPO_DIR ? '' : ' (baseline)'}${profileDir ? ' (profiled)' : ''}`;
    const warmup =
      opts.warmupS > 0
        ? await closedLoop({
            concurrency: opts.concurrency,
            durationS: opts.warmupS,
            next,
            send,
            seen,
            label: `${label} warm-up`,
          })
        : null;
    const before = await scrape(r.http);
    const clientCpu = process.cpuUsage();
    const machineBefore = await machineCpu();
    const measured = await closedLoop({
      concurrency: opts.concurrency,
      durationS: opts.durationS,
      next,
      send,
      seen,
      label: `${label} measured`,
    });
    const clientCpuUs = process.cpuUsage(clientCpu);
    const machineAfter = await machineCpu();
    const after = await scrape(r.http);
    const rates = hitRates(tierCounts(before, after), measured);
    const serviceCpuS =
      metricSum(after, 'process_cpu_seconds_total') -
      metricSum(before, 'process_cpu_seconds_total');
    const cpu: CpuUse = {
      serviceCores: round(serviceCpuS / measured.seconds, 2),
      serviceUsPerRequest: round((serviceCpuS * 1e6) / Math.max(1, measured.completed), 1),
      clientCores: round((clientCpuUs.user + clientCpuUs.system) / 1e6 / measured.seconds, 2),
      machineCores:
        machineBefore && machineAfter
          ? round(
              ((machineAfter.busy - machineBefore.busy) /
                Math.max(1, machineAfter.total - machineBefore.total)) *
                os.cpus().length,
              2,
            )
          : null,
    };
    log(
      `${label}: ${measured.rps} req/s, p50 ${measured.latencyMs.p50} ms, hit rate ${rates.overall ?? '-'} (ideal ${rates.ideal})`,
    );
    return {
      cacheEnabled,
      bootS: round(r.bootS, 1),
      warmup,
      measured,
      hitRates: rates,
      cpu,
      responseBytes: Buffer.byteLength(first.body),
      sampleBody: first.body,
    };
  } finally {
    await stopService(r);
  }
}

/** The bare NestJS + Fastify route (bench/lib/bare-route.ts) under the same loop. */
interface BareRun {
  bootS: number;
  warmup: LoopResult | null;
  measured: LoopResult;
  /** the bare process's CPU time per completed request (/proc/<pid>/stat) */
  serviceUsPerRequest: number;
  serviceCores: number;
  responseBytes: number;
}

/**
 * The framework's ceiling beside the cached GETs (issue 14, target 3): the same client,
 * concurrency, id sequence and response body (`template`, the service's own answer for
 * one recipe), from a NestJS + Fastify application with one route and nothing else.
 */
interface BareProcess {
  service: ServiceProcess;
  http: HttpClient;
  load: HttpClient;
  bootS: number;
  responseBytes: number;
  close: () => Promise<void>;
}

/** Starts the bare route answering with `template`, checked with one GET. */
async function startBare(opts: Options, firstId: string, template: string): Promise<BareProcess> {
  const port = await freePort();
  const service = ServiceProcess.start(
    REPO_DIR,
    { BARE_TEMPLATE: template, NODE_ENV: 'production' },
    port,
    'dist/bench/lib/bare-route.js',
  );
  const http = new HttpClient('127.0.0.1', port, 2);
  const load = new HttpClient('127.0.0.1', port, opts.concurrency);
  const close = async (): Promise<void> => {
    http.close();
    load.close();
    await service.stop();
  };
  try {
    const bootS = await service.waitReady(http, 60_000);
    log(`bare route ready on :${port} (pid ${service.pid}) after ${bootS.toFixed(1)}s`);
    const first = await http.request('GET', `/v1/recipes/${firstId}`);
    if (first.status !== 200 || (JSON.parse(first.body) as { id?: string }).id !== firstId) {
      throw new Error(`bare route: GET answered ${first.status}: ${first.body.slice(0, 300)}`);
    }
    return { service, http, load, bootS, responseBytes: Buffer.byteLength(first.body), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A closed loop of GETs over the seeded Zipf id sequence through `client`. */
function zipfLoop(
  opts: Options,
  byRank: readonly string[],
  client: HttpClient,
  auth?: Record<string, string>,
): (label: string, durationS: number) => Promise<LoopResult> {
  const zipf = new Zipf(byRank.length, opts.zipfS);
  const rng = new Rng(opts.seed ^ 0x5bd1e995);
  const next = (): string => byRank[zipf.sample(rng)];
  const send = async (id: string): Promise<number> =>
    (await client.request('GET', `/v1/recipes/${id}`, undefined, auth)).status;
  const seen = new Set<string>([byRank[0]]);
  return (label, durationS) =>
    closedLoop({ concurrency: opts.concurrency, durationS, next, send, seen, label });
}

async function bareRun(
  opts: Options,
  byRank: readonly string[],
  template: string,
): Promise<BareRun> {
  const bare = await startBare(opts, byRank[0], template);
  try {
    const loop = zipfLoop(opts, byRank, bare.load);
    const warmup = opts.warmupS > 0 ? await loop('bare route warm-up', opts.warmupS) : null;
    const cpu0 = await bare.service.cpuSeconds();
    const measured = await loop('bare route measured', opts.durationS);
    const cpuS = (await bare.service.cpuSeconds()) - cpu0;
    log(`bare route: ${measured.rps} req/s, p50 ${measured.latencyMs.p50} ms`);
    return {
      bootS: round(bare.bootS, 1),
      warmup,
      measured,
      serviceUsPerRequest: round((cpuS * 1e6) / Math.max(1, measured.completed), 1),
      serviceCores: round(cpuS / measured.seconds, 2),
      responseBytes: bare.responseBytes,
    };
  } finally {
    await bare.close();
  }
}

/**
 * --bare-rounds: the cached GET, the bare route and the uncached GET (a second service
 * with the cache off), all up at once, measured in rounds; each round runs the three in
 * a rotated order, so drift and order effects fall on every side alike.
 */
interface PairedBare {
  rounds: Array<{
    order: string;
    cachedRps: number;
    bareRps: number;
    uncachedRps: number;
    /** cached / bare */
    ratio: number;
    /** cached / uncached */
    cachedRatio: number;
  }>;
  /** median of the rounds' cached / bare */
  medianRatio: number;
  /** median of the rounds' cached / uncached */
  medianCachedRatio: number;
  /** L1 + L2 hit rate of the cached service over all its rounds */
  hitRate: number | null;
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : round((sorted[mid - 1] + sorted[mid]) / 2, 3);
}

async function pairedBareRun(
  env: StackEnv,
  opts: Options,
  byRank: readonly string[],
  template: string,
): Promise<PairedBare> {
  const cachedSvc = await startService(env, opts, true);
  let uncachedSvc: Running | null = null;
  let bare: BareProcess | null = null;
  try {
    uncachedSvc = await startService(env, opts, false);
    bare = await startBare(opts, byRank[0], template);
    const sides = {
      cached: zipfLoop(opts, byRank, cachedSvc.load, cachedSvc.auth),
      bare: zipfLoop(opts, byRank, bare.load),
      uncached: zipfLoop(opts, byRank, uncachedSvc.load, uncachedSvc.auth),
    };
    const names = ['cached', 'bare', 'uncached'] as const;
    if (opts.warmupS > 0) {
      for (const name of names) {
        await sides[name](`rounds: ${name} warm-up`, opts.warmupS);
      }
    }
    const before = await scrape(cachedSvc.http);
    const rounds: PairedBare['rounds'] = [];
    for (let i = 0; i < opts.bareRounds; i++) {
      const order = names.map((_, k) => names[(k + i) % names.length]);
      const label = `round ${i + 1}/${opts.bareRounds}`;
      const got: Partial<Record<(typeof names)[number], LoopResult>> = {};
      for (const name of order) {
        const res = await sides[name](`${label}: ${name}`, opts.durationS);
        if (res.errors > 0) {
          throw new Error(`${label}: ${res.errors} failed requests (${name})`);
        }
        got[name] = res;
      }
      const cachedRps = got.cached!.rps;
      const round_ = {
        order: order.join(', '),
        cachedRps,
        bareRps: got.bare!.rps,
        uncachedRps: got.uncached!.rps,
        ratio: round(cachedRps / got.bare!.rps, 3),
        cachedRatio: round(cachedRps / got.uncached!.rps, 3),
      };
      rounds.push(round_);
      log(
        `${label}: cached ${cachedRps}, bare ${round_.bareRps}, uncached ${round_.uncachedRps} req/s: ` +
          `cached / bare ${round_.ratio} x, cached / uncached ${round_.cachedRatio} x`,
      );
    }
    const c = tierCounts(before, await scrape(cachedSvc.http));
    const lookups = c.l1Hits + c.l1Misses;
    return {
      rounds,
      medianRatio: median(rounds.map((x) => x.ratio)),
      medianCachedRatio: median(rounds.map((x) => x.cachedRatio)),
      hitRate: lookups > 0 ? round((c.l1Hits + c.l2Hits) / lookups, 4) : null,
    };
  } finally {
    await bare?.close();
    if (uncachedSvc) {
      await stopService(uncachedSvc);
    }
    await stopService(cachedSvc);
  }
}

// ---------------------------------------------------------------------------
// --monitoring-ab (issue 12): cached GETs with monitoring off versus on

async function monitoringAb(
  env: StackEnv,
  opts: Options,
  byRank: readonly string[],
  comparison?: AbComparison,
): Promise<MonitoringAbReport> {
  return runMonitoringAb({
    comparison,
    workload: `bench:cache cached GET /v1/recipes/:id (cache on, zipf ${opts.zipfS}, c=${opts.concurrency})`,
    rounds: opts.abRounds,
    paired: opts.abPaired,
    idleS: opts.abIdleS,
    warmupS: opts.warmupS,
    durationS: opts.durationS,
    cloudwatchIntervalS: opts.abCloudwatchIntervalS,
    only: opts.abOnly,
    start: async (monitoringEnv): Promise<AbService> => {
      const r = await startService(env, opts, true, REPO_DIR, monitoringEnv);
      // the same seeded id sequence in every round
      const zipf = new Zipf(byRank.length, opts.zipfS);
      const rng = new Rng(opts.seed ^ 0x5bd1e995);
      const next = (): string => byRank[zipf.sample(rng)];
      const send = async (id: string): Promise<number> =>
        (await r.load.request('GET', `/v1/recipes/${id}`, undefined, r.auth)).status;
      const seen = new Set<string>();
      const loop = (label: string, durationS: number) =>
        closedLoop({ concurrency: opts.concurrency, durationS, next, send, seen, label });
      return {
        bootS: r.bootS,
        warmup: (label) => loop(label, opts.warmupS),
        measure: (label) => loop(label, opts.durationS),
        evidence: async () => {
          const s = await scrape(r.http);
          return {
            cloudwatchDatumsSent: metricSum(s, 'dbu_cloudwatch_datums_sent_total'),
            cloudwatchPutFailures: metricSum(s, 'dbu_cloudwatch_put_failures_total'),
            alertEvaluations: metricSum(s, 'dbu_alert_evaluations_total'),
            samplerLeader: metricSum(s, 'dbu_monitoring_sampler_leader'),
            l1Hits: metricSum(s, 'cache_hits_total', { tier: 'l1', type: CACHE_TYPE }),
            l2Hits: metricSum(s, 'cache_hits_total', { tier: 'l2', type: CACHE_TYPE }),
            l2Misses: metricSum(s, 'cache_misses_total', { tier: 'l2', type: CACHE_TYPE }),
          };
        },
        cpuSeconds: async () => metricSum(await scrape(r.http), 'process_cpu_seconds_total'),
        stop: () => stopService(r),
      };
    },
  });
}

// ---------------------------------------------------------------------------
// Search results under writes (issue 10, part 2)

interface MixedRun {
  label: string;
  /** the service under test: this checkout, or --baseline-dir */
  build: 'this checkout' | 'baseline';
  writeShare: number;
  writeKind: WriteKind | null;
  warmup: MixedLoopResult | null;
  measured: MixedLoopResult;
  counts: SearchCacheCounts;
  hitRates: {
    /** searches answered by L1 or L2 */
    ofSearches: number | null;
    /** cache lookups answered by L1 or L2 (searches run uncached while the generation is unusable are not lookups) */
    ofLookups: number | null;
    l1: number | null;
  };
  /** generation bumps per second of the measured phase */
  bumpsPerS: number;
}

async function mixedRun(
  env: StackEnv,
  opts: Options,
  run: { label: string; writeShare: number; writeKind: WriteKind | null; baseline: boolean },
  bodies: readonly Buffer[],
  writeIds: readonly string[],
): Promise<MixedRun> {
  const r = await startService(env, opts, true, run.baseline ? opts.baselineDir : REPO_DIR);
  try {
    const zipf = new Zipf(bodies.length, opts.zipfS);
    // the same seeded sequence in every run
    const rng = new Rng(opts.seed ^ 0x1b873593);
    const seen = new Set<number>();
    const loop = (label: string, durationS: number): Promise<MixedLoopResult> =>
      mixedLoop({
        http: r.load,
        auth: r.auth,
        bodies,
        zipf,
        rng,
        writeShare: run.writeShare,
        writeKind: run.writeKind ?? 'patch',
        writeIds,
        writeSeed: opts.seed ^ 0x85ebca6b,
        concurrency: opts.concurrency,
        durationS,
        seen,
        label,
      });
    const warmup =
      opts.mixedWarmupS > 0 ? await loop(`${run.label} warm-up`, opts.mixedWarmupS) : null;
    const before = await scrape(r.http);
    const measured = await loop(`${run.label} measured`, opts.mixedDurationS);
    const after = await scrape(r.http);
    const counts = searchCacheCounts(before, after);
    const ratio = (a: number, b: number): number | null => (b > 0 ? round(a / b, 4) : null);
    const hits = counts.l1Hits + counts.l2Hits;
    const lookups = counts.l1Hits + counts.l1Misses;
    const result: MixedRun = {
      label: run.label,
      build: run.baseline ? 'baseline' : 'this checkout',
      writeShare: run.writeShare,
      writeKind: run.writeKind,
      warmup,
      measured,
      counts,
      hitRates: {
        ofSearches: ratio(hits, measured.searches),
        ofLookups: ratio(hits, lookups),
        l1: ratio(counts.l1Hits, lookups),
      },
      bumpsPerS: round(counts.bumps / measured.seconds, 2),
    };
    log(
      `${run.label}: ${measured.rps} req/s, search hit rate ${result.hitRates.ofSearches ?? '-'} (ideal ${measured.ideal}), ${counts.bumps} bumps`,
    );
    return result;
  } finally {
    await stopService(r);
  }
}

async function mixedPhase(
  env: StackEnv,
  opts: Options,
  byRank: readonly string[],
): Promise<MixedRun[]> {
  const embedded = byRank.slice(0, Math.min(opts.searchRecipes, byRank.length));
  await ensureEmbeddings(env, CACHE_BENCH_DB, embedded, embedded.length, opts.seed);
  await waitForReplica(env);
  const bodies = searchBodies(opts.searchQueries, opts.seed ^ 0x27d4eb2f);
  const share = opts.mixedWriteShare;
  const pctLabel = `${Math.round(100 * (1 - share))}/${Math.round(100 * share)}`;
  const runs: Array<{
    label: string;
    writeShare: number;
    writeKind: WriteKind | null;
    baseline: boolean;
  }> = [
    { label: 'reads only', writeShare: 0, writeKind: null, baseline: false },
    {
      label: `${pctLabel}, PATCH title (write-behind)`,
      writeShare: share,
      writeKind: 'patch',
      baseline: false,
    },
    {
      label: `${pctLabel}, create (write-through)`,
      writeShare: share,
      writeKind: 'create',
      baseline: false,
    },
  ];
  if (opts.baselineDir) {
    runs.push(
      {
        label: `baseline ${pctLabel}, PATCH title`,
        writeShare: share,
        writeKind: 'patch',
        baseline: true,
      },
      {
        label: `baseline ${pctLabel}, create`,
        writeShare: share,
        writeKind: 'create',
        baseline: true,
      },
    );
  }
  const out: MixedRun[] = [];
  for (const run of runs) {
    out.push(await mixedRun(env, opts, run, bodies, embedded));
    if (run.writeKind === 'create') {
      // gone again, so that every run starts from the same recipes
      await withClient(cacheDbConfig(env, env.primary), (c) =>
        c.query(`DELETE FROM recipes WHERE title LIKE 'Mixed create %'`),
      );
      await waitForReplica(env);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Durability phase

async function durability(
  env: StackEnv,
  opts: Options,
  byRank: readonly string[],
  tag: string,
): Promise<{ control: DurabilityRun; kill: DurabilityRun | null }> {
  // the coldest recipes: distinct sets for the control, the kill run and the probe
  const n = byRank.length;
  const controlIds = byRank.slice(n - opts.wbUpdates);
  const killIds = byRank.slice(n - 2 * opts.wbUpdates, n - opts.wbUpdates);
  const probeIds = byRank.slice(n - 2 * opts.wbUpdates - opts.wbProbe, n - 2 * opts.wbUpdates);
  const r = await startService(env, opts, true);
  const handle = {
    http: r.http,
    auth: r.auth,
    redis: env.vars,
    repoDir: REPO_DIR,
    env,
    output: () => r.service.output(),
  };
  try {
    const control = await controlRun(handle, controlIds, opts.wbRate, opts.wbSettleS * 2, tag);
    log(
      `control: ${control.acknowledged} acknowledged, ${control.persisted} persisted, ${control.lost} lost`,
    );
    if (opts.noKill) {
      return { control, kill: null };
    }
    const kill = await killRun(handle, killIds, probeIds, opts.wbRate, opts.wbSettleS, tag);
    log(
      `redis kill: ${kill.acknowledged} acknowledged, ${kill.persisted} persisted, ${kill.lost} lost`,
    );
    return { control, kill };
  } finally {
    await stopService(r);
  }
}

// ---------------------------------------------------------------------------
// Machine

async function machineInfo(versions: Versions): Promise<Record<string, unknown>> {
  return {
    ...(await hostInfo(REPO_DIR)),
    postgres: versions.postgres,
    redis: versions.redis,
    redisPersistence: versions.redisPersistence,
    note: 'the load generator, the service, Redis and both PostgreSQL nodes share these CPUs',
  };
}

// ---------------------------------------------------------------------------
// Targets and output

function evaluateTargets(report: Report): Target[] {
  const t: Target[] = [];
  const ip = report.results.inProcess;
  if (ip) {
    t.push({
      name: 'L1 hit, in-process median',
      target: '< 20 µs',
      value: `${ip.l1Hit.p50.toFixed(1)} µs`,
      pass: ip.l1Hit.p50 < 20,
    });
  }
  const on = report.results.http.cacheOn;
  const off = report.results.http.cacheOff;
  const bare = report.results.http.bare;
  const throughputRatio = (
    name: string,
    min: number,
    a: HttpRun,
    b: { measured: LoopResult },
    extra = '',
  ) => {
    const ratio = a.measured.rps / b.measured.rps;
    t.push({
      name,
      target: `>= ${min} x`,
      value: `${ratio.toFixed(2)} x (${a.measured.rps.toFixed(0)} / ${b.measured.rps.toFixed(0)} req/s${extra})`,
      pass: ratio >= min,
    });
  };
  if (on && off) {
    throughputRatio('cached / uncached GET throughput', 3, on, off);
  }
  if (on && bare) {
    throughputRatio(
      'cached GET / bare NestJS + Fastify route throughput',
      0.5,
      on,
      bare,
      `; CPU ${on.cpu.serviceUsPerRequest} / ${bare.serviceUsPerRequest} µs per request`,
    );
  }
  const paired = report.results.http.pairedBare;
  if (paired) {
    const rounds = (k: 'ratio' | 'cachedRatio') =>
      paired.rounds.map((x) => x[k].toFixed(2)).join(', ');
    t.push({
      name: `cached / uncached GET, median of ${paired.rounds.length} rounds`,
      target: '>= 3 x',
      value: `${paired.medianCachedRatio.toFixed(2)} x (rounds ${rounds('cachedRatio')})`,
      pass: paired.medianCachedRatio >= 3,
    });
    t.push({
      name: `cached GET / bare route, median of ${paired.rounds.length} rounds`,
      target: '>= 0.5 x',
      value: `${paired.medianRatio.toFixed(2)} x (rounds ${rounds('ratio')})`,
      pass: paired.medianRatio >= 0.5,
    });
  }
  if (on) {
    const h = on.hitRates.overall;
    t.push({
      name: 'hit rate after warm-up (L1 + L2)',
      target: '>= 90 %',
      value: h === null ? 'n/a' : `${(100 * h).toFixed(1)} %`,
      pass: h !== null && h >= 0.9,
    });
  }
  const control = report.results.durability?.control;
  if (control) {
    t.push({
      name: 'write-behind without a crash: updates lost',
      target: '0',
      value: `${control.lost} of ${control.acknowledged}`,
      pass: control.lost === 0 && control.acknowledged === control.updates,
    });
  }
  return t;
}

const pct = (x: number | null | undefined): string =>
  x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)} %`;
const num = (x: number | null | undefined, digits = 0): string =>
  x === null || x === undefined ? '-' : x.toFixed(digits);

function render(report: Report): string {
  const out: string[] = [];
  const p = report.parameters;
  const { cacheOn, cacheOff } = report.results.http;
  if (cacheOn || cacheOff) {
    out.push(
      `GET /v1/recipes/:id, Zipf s=${p.zipfS} over ${report.dataset.recipes.toLocaleString('en')} recipes, ` +
        `c=${p.concurrency} keep-alive, warm-up ${p.warmupS}s, measured ${p.durationS}s (client shares the ${os.cpus().length} CPUs)`,
    );
    const rows = [cacheOn, cacheOff].flatMap((r) =>
      r
        ? [
            [
              r.cacheEnabled ? 'cache on' : 'cache off',
              r.measured.rps.toFixed(0),
              r.measured.latencyMs.p50.toFixed(2),
              r.measured.latencyMs.p95.toFixed(2),
              r.measured.latencyMs.p99.toFixed(2),
              String(r.measured.errors),
              pct(r.hitRates.l1),
              pct(r.hitRates.l2),
              pct(r.hitRates.overall),
              r.cacheEnabled ? pct(r.hitRates.ideal) : '-',
              r.cpu.serviceUsPerRequest.toFixed(0),
              r.cpu.serviceCores.toFixed(2),
              r.cpu.clientCores.toFixed(2),
              num(r.cpu.machineCores, 2),
            ],
          ]
        : [],
    );
    out.push(
      table(
        [
          'run',
          'req/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'errors',
          'L1 hit',
          'L2 hit',
          'hit',
          'ideal',
          'svc µs/req',
          'svc cores',
          'client cores',
          'machine cores',
        ],
        rows,
      ),
    );
    if (cacheOn && cacheOff) {
      out.push(
        `cached / uncached throughput: ${(cacheOn.measured.rps / cacheOff.measured.rps).toFixed(2)} x`,
      );
    }
    const base = report.results.http.cacheOnBaseline;
    if (base && cacheOn) {
      out.push(
        `baseline build (${p.baselineDir}), cache on: ${base.measured.rps.toFixed(0)} req/s, ` +
          `${base.cpu.serviceUsPerRequest} µs CPU per request (this build: ${cacheOn.measured.rps.toFixed(0)}, ${cacheOn.cpu.serviceUsPerRequest})`,
      );
    }
    const stages = report.results.http.stages;
    if (stages) {
      out.push(
        `CPU per cached GET by stage (self time in a --cpu-prof run of each build; µs are profiled CPU per request, the profiler's own cost included): ` +
          `this build ${stages.current.busyUsPerRequest} µs` +
          (stages.baseline ? `, baseline ${stages.baseline.busyUsPerRequest} µs` : ''),
      );
      out.push(
        table(
          [
            'stage',
            'this build %',
            'this build µs',
            ...(stages.baseline ? ['baseline %', 'baseline µs'] : []),
          ],
          STAGES.filter((s) => s !== 'idle').map((s) => [
            s,
            stages.current.busyPct[s].toFixed(1),
            num(stages.current.usPerRequest[s], 1),
            ...(stages.baseline
              ? [stages.baseline.busyPct[s].toFixed(1), num(stages.baseline.usPerRequest[s], 1)]
              : []),
          ]),
        ),
      );
    }
    const paired = report.results.http.pairedBare;
    if (paired) {
      out.push(
        `rounds (cached / bare / uncached req/s): ` +
          paired.rounds
            .map(
              (x) =>
                `${x.cachedRps.toFixed(0)} / ${x.bareRps.toFixed(0)} / ${x.uncachedRps.toFixed(0)}`,
            )
            .join('; ') +
          `; medians: cached / bare ${paired.medianRatio.toFixed(2)} x, cached / uncached ` +
          `${paired.medianCachedRatio.toFixed(2)} x; cached service hit rate ${paired.hitRate ?? '-'}`,
      );
    }
    const bare = report.results.http.bare;
    if (bare) {
      out.push(
        `bare NestJS + Fastify route, same client and body (${bare.responseBytes} bytes): ` +
          `${bare.measured.rps.toFixed(0)} req/s, p50 ${bare.measured.latencyMs.p50.toFixed(2)} ms, ` +
          `${bare.serviceUsPerRequest} µs CPU per request, ${bare.serviceCores} cores` +
          (cacheOn
            ? `; cached GET / bare: ${(cacheOn.measured.rps / bare.measured.rps).toFixed(2)} x`
            : ''),
      );
    }
    out.push('');
  }
  const mixed = report.results.mixed;
  if (mixed && mixed.length > 0) {
    out.push(
      `POST /v1/recipes/search (limit 20, maxDistance 0.8) over ${p.searchQueries} query vectors (Zipf s=${p.zipfS}), ` +
        `${p.searchRecipes} recipes with embeddings, c=${p.concurrency}, warm-up ${p.mixedWarmupS}s, measured ${p.mixedDurationS}s`,
    );
    out.push(
      table(
        [
          'run',
          'build',
          'req/s',
          'searches',
          'writes',
          'search p50 ms',
          'search p95 ms',
          'write p50 ms',
          'errors',
          'bumps/s',
          'L1 hit',
          'hit (lookups)',
          'hit (searches)',
          'ideal',
        ],
        mixed.map((m) => [
          m.label,
          m.build,
          m.measured.rps.toFixed(0),
          String(m.measured.searches),
          String(m.measured.writes),
          m.measured.searchLatencyMs.p50.toFixed(2),
          m.measured.searchLatencyMs.p95.toFixed(2),
          m.measured.writeLatencyMs ? m.measured.writeLatencyMs.p50.toFixed(2) : '-',
          String(m.measured.errors),
          m.bumpsPerS.toFixed(1),
          pct(m.hitRates.l1),
          pct(m.hitRates.ofLookups),
          pct(m.hitRates.ofSearches),
          pct(m.measured.ideal),
        ]),
      ),
    );
    out.push('');
  }
  const ip = report.results.inProcess;
  if (ip) {
    out.push(
      `In-process (TieredCacheService / RecipesRepository), µs per call, ${ip.sampleIds} recipes of ~${ip.valueBytesMean} B`,
    );
    out.push(
      table(
        ['operation', 'calls', 'p50 µs', 'p95 µs', 'p99 µs', 'mean µs'],
        (
          [
            ['L1 hit', ip.l1Hit],
            ['L2 hit (Redis)', ip.l2Hit],
            ['DB read (replica)', ip.dbRead],
            ['miss → DB → fill', ip.missLoadFill],
          ] as const
        ).map(([name, s]) => [
          name,
          String(s.n),
          s.p50.toFixed(1),
          s.p95.toFixed(1),
          s.p99.toFixed(1),
          s.mean.toFixed(1),
        ]),
      ),
    );
    out.push('');
  }
  const d = report.results.durability;
  if (d) {
    out.push(
      `Write-behind durability (CACHE_WRITE_BEHIND_FLUSH_MS=${p.flushMs}, Redis appendonly ${String(
        report.machine.redisPersistence &&
          (report.machine.redisPersistence as Record<string, string>).appendonly,
      )}): PATCH /v1/recipes/:id at ${p.wbRate}/s`,
    );
    const runs = [d.control, d.kill].filter((r): r is DurabilityRun => r !== null && !r.skipped);
    out.push(
      table(
        [
          'run',
          'acked',
          'persisted',
          'lost',
          'window ms',
          'queued at end',
          'lag mean s',
          'lag p50 s',
          'lag p99 s',
          'ack p50 ms',
        ],
        runs.map((r) => [
          r.kind,
          String(r.acknowledged),
          String(r.persisted),
          String(r.lost),
          r.kind === 'redis-kill' ? num(r.lossWindowMs) : '-',
          num(r.streamLengthAtEnd),
          num(r.flushLag.meanS, 3),
          num(r.flushLag.p50S, 3),
          num(r.flushLag.p99S, 3),
          r.ackLatencyMs.p50.toFixed(2),
        ]),
      ),
    );
    if (d.kill?.skipped) {
      out.push(`redis-kill run skipped: ${d.kill.skipped}`);
    }
    const a = d.kill?.afterRestart;
    if (a) {
      out.push(
        [
          `After the Redis restart (down ${d.kill?.redisDownS ?? '?'}s; service reconnected after ${a.reconnectS ?? '?'}s):`,
          `  Redis restored its RDB snapshot${a.snapshot?.ageS !== null && a.snapshot?.ageS !== undefined ? ` (written ${a.snapshot.ageS}s before the kill)` : ''}: ${a.keysAfterRestart} keys of ${CACHE_BENCH_DB}, write-behind consumer group ${a.streamGroupAfterRestart ? 'present' : 'absent'}`,
          `  GET of the ${a.reads} recipes: ${a.matchDatabase} as in PostgreSQL, ${a.olderThanDatabase} an older version than PostgreSQL, ${a.servedLostTitle} an acknowledged title PostgreSQL never got, ${a.other} other, ${a.errors} errors`,
          `  ${a.probe.updates} new PATCHes: ${a.probe.acknowledged} acknowledged, ${a.probe.persisted} persisted within ${a.probe.settleS}s`,
          ...(a.probe.persisted < a.probe.acknowledged && a.serviceLog.length > 0
            ? [`  service log: ${a.serviceLog[a.serviceLog.length - 1]}`]
            : []),
        ].join('\n'),
      );
    }
    out.push('');
  }
  if (report.interference.length > 0) {
    out.push(
      `WARNING: another benchmark ran during this one (${report.interference.map((i) => i.at).join(', ')}): the numbers are disturbed`,
    );
    out.push('');
  }
  out.push('Targets');
  out.push(targetsTable(report.targets));
  return out.join('\n');
}

interface Interference {
  at: string;
  process: string;
}

interface Report {
  benchmark: 'cache';
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  loadAverage: { start: number[]; end: number[] };
  /** another benchmark found running at a phase's start or end: its numbers are disturbed */
  interference: Interference[];
  parameters: Options;
  dataset: { database: string; recipes: number; loaded: boolean; zipfHead: Record<string, number> };
  results: {
    http: {
      cacheOn: HttpRun | null;
      cacheOff: HttpRun | null;
      bare: BareRun | null;
      /** --bare-rounds: the cached GET and the bare route in alternating rounds */
      pairedBare: PairedBare | null;
      /** --baseline-dir's build under the same cached run */
      cacheOnBaseline: HttpRun | null;
      /** --stage-profile: CPU per request by stage (this build, and the baseline's) */
      stages: { current: StageBudget; baseline: StageBudget | null } | null;
    };
    /** search results under a read/write mix */
    mixed: MixedRun[] | null;
    inProcess: InProcessResult | null;
    durability: { control: DurabilityRun; kill: DurabilityRun | null } | null;
  };
  targets: Target[];
  phasesS: Record<string, number>;
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const phases: Record<string, number> = {};
  const interference: Interference[] = [];
  const checkOthers = async (at: string): Promise<void> => {
    const other = await otherBenchmarkRunning();
    if (other) {
      interference.push({ at, process: other });
      log(`WARNING: another benchmark is running (${other}); numbers are disturbed`);
    }
  };
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    log(`--- ${name}`);
    await checkOthers(`${name} start`);
    const [result, s] = await timed(fn);
    await checkOthers(`${name} end`);
    phases[name] = round(s, 1);
    return result;
  };

  const env = await loadStackEnv(REPO_DIR);
  const redisUrl = env.vars.REDIS_URL;
  log(
    `primary ${env.primary.host}:${env.primary.port}, database ${CACHE_BENCH_DB}, redis ${redisUrl}`,
  );
  await phase('setup', async () => {
    if (await ensureCacheDatabase(env)) {
      log(`created database ${CACHE_BENCH_DB}`);
    }
    await migrateCacheDatabase(env, REPO_DIR);
  });
  if (!opts.skipLoad) {
    await phase('load', () => loadRecipes(env, opts.recipes, opts.seed));
  }
  await phase('replica catch-up', () => waitForReplica(env));
  const ids = await withClient(cacheDbConfig(env, env.primary), async (c) =>
    (await c.query<{ id: string }>('SELECT id::text AS id FROM recipes ORDER BY id')).rows.map(
      (r) => r.id,
    ),
  );
  if (ids.length < 100) {
    throw new Error(`${CACHE_BENCH_DB} holds ${ids.length} recipes: run without --skip-load`);
  }
  opts.recipes = ids.length;
  // popularity rank -> id: a seeded shuffle, so hot recipes are spread over the heap
  const shuffleRng = new Rng(opts.seed);
  const byRank = [...ids];
  for (let i = byRank.length - 1; i > 0; i--) {
    const j = shuffleRng.int(i + 1);
    [byRank[i], byRank[j]] = [byRank[j], byRank[i]];
  }
  const zipf = new Zipf(byRank.length, opts.zipfS);
  const versions = await serverVersions(env, env.vars);
  const tag = `${Date.now().toString(36)}`;

  if (opts.monitoringAb || opts.tlsAb) {
    // only the A/B of the HTTP phase; its own report file (the day's main report stays)
    const comparison = opts.tlsAb ? await tlsComparison(env) : undefined;
    const mode = opts.tlsAb ? 'tls-ab' : 'monitoring-ab';
    const ab = await phase(opts.tlsAb ? 'TLS A/B' : 'monitoring A/B', () =>
      monitoringAb(env, opts, byRank, comparison),
    );
    await flushBenchKeys(env.vars);
    const abReport = {
      benchmark: 'cache',
      mode,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: await machineInfo(versions),
      loadAverage: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) },
      interference,
      parameters: opts,
      dataset: { database: CACHE_BENCH_DB, recipes: ids.length, loaded: !opts.skipLoad },
      results: opts.tlsAb ? { tlsAb: ab } : { monitoringAb: ab },
      phasesS: phases,
    };
    const file = await writeReport('cache', startedAt, opts.tag || mode, abReport);
    process.stdout.write(
      `${renderMonitoringAb(ab)}\n\nphases (s): ${JSON.stringify(phases)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
    );
    return;
  }

  let inProcess: InProcessResult | null = null;
  if (!opts.skipInproc) {
    inProcess = await phase('in-process', async () => {
      await flushBenchKeys(env.vars);
      const n = opts.inprocIterations;
      return measureInProcess(
        serviceEnv(env, opts, true),
        byRank.slice(0, Math.min(opts.inprocIds, byRank.length)),
        {
          l1: n,
          l2: Math.max(10, Math.round(n / 4)),
          db: Math.max(10, Math.round(n / 10)),
          miss: Math.max(10, Math.round(n / 10)),
        },
      );
    });
  }
  let cacheOn: HttpRun | null = null;
  let cacheOff: HttpRun | null = null;
  if (!opts.skipHttp) {
    cacheOn = await phase('HTTP cache on', () => httpRun(env, opts, byRank, true));
    cacheOff = await phase('HTTP cache off', () => httpRun(env, opts, byRank, false));
  }
  const on = cacheOn;
  const bare =
    on && !opts.skipBare
      ? await phase('HTTP bare route', () => bareRun(opts, byRank, on.sampleBody))
      : null;
  const pairedBare =
    on && opts.bareRounds > 0
      ? await phase('HTTP cached, bare and uncached in rounds', () =>
          pairedBareRun(env, opts, byRank, on.sampleBody),
        )
      : null;
  // the same cached run of the baseline build (--baseline-dir), for before/after
  const cacheOnBaseline =
    on && opts.baselineDir
      ? await phase('HTTP cache on (baseline)', () =>
          httpRun(env, opts, byRank, true, opts.baselineDir),
        )
      : null;
  let stages: { current: StageBudget; baseline: StageBudget | null } | null = null;
  if (on && opts.stageProfile) {
    const profiled = async (dir: string): Promise<StageBudget> => {
      const tmp = await mkdtemp(path.join(os.tmpdir(), 'dbu-bench-prof-'));
      try {
        const run = await httpRun(env, opts, byRank, true, dir, tmp);
        // the measured phase ends about a second before the profile (scrape, SIGTERM):
        // its last durationS − 1 seconds, and the requests of that share of the phase
        const windowS = opts.durationS - 1;
        const requests = (run.measured.completed * windowS) / run.measured.seconds;
        return await stageBudget(tmp, windowS, 1, requests);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    };
    const current = await phase('stage profile', () => profiled(REPO_DIR));
    const baseline = cacheOnBaseline
      ? await phase('stage profile (baseline)', () => profiled(opts.baselineDir))
      : null;
    stages = { current, baseline };
  }
  const mixed = opts.skipMixed
    ? null
    : await phase('search results under writes', () => mixedPhase(env, opts, byRank));
  const dur = opts.skipDurability
    ? null
    : await phase('write-behind durability', () => durability(env, opts, byRank, tag));
  await flushBenchKeys(env.vars);

  const report: Report = {
    benchmark: 'cache',
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: await machineInfo(versions),
    loadAverage: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) },
    interference,
    parameters: opts,
    dataset: {
      database: CACHE_BENCH_DB,
      recipes: ids.length,
      loaded: !opts.skipLoad,
      zipfHead: Object.fromEntries(
        [1, 10, 100, 1000].map((k) => [`top${k}`, round(zipf.headShare(k), 4)]),
      ),
    },
    results: {
      http: { cacheOn, cacheOff, bare, pairedBare, cacheOnBaseline, stages },
      mixed,
      inProcess,
      durability: dur,
    },
    targets: [],
    phasesS: phases,
  };
  report.targets = evaluateTargets(report);
  const file = await writeReport('cache', report.startedAt, opts.tag, report);
  process.stdout.write(
    `${render(report)}\n\nphases (s): ${JSON.stringify(phases)}\nresults: ${path.relative(REPO_DIR, file)}\n`,
  );
}

runBench('cache', main);
