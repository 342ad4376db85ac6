import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { superQuery } from './support/databases.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const run = promisify(execFile);

/** Bench databases of this file only: a developer's loaded data sets are never replaced. */
const SEARCH_DB = 'dbu_bench_smoke_search';
const CACHE_DB = 'dbu_bench_smoke_cache';
/** bench:search --regime incremental changes its table: a database of its own. */
const SEARCH_INCR_DB = 'dbu_bench_smoke_incr';
/** bench:search --regime loader writes rows and deletes them (the index keeps them until VACUUM). */
const SEARCH_LOADER_DB = 'dbu_bench_smoke_loader';
/** bench:growth reloads its table at each size. */
const GROWTH_DB = 'dbu_bench_smoke_growth';

interface Bench {
  name: string;
  args: string[];
  env: Record<string, string>;
}

/** `bench:search --regime <regime> <args>` in database `db`, its report into `dir`. */
async function searchRegime(regime: string, args: string, db: string, dir: string): Promise<void> {
  await run(
    process.execPath,
    [join('dist', 'bench', 'search.js'), '--regime', regime, ...args.split(' ')],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_SEARCH_DB: db, BENCH_RESULTS_DIR: dir },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    },
  ).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
    throw new Error(
      `bench:search --regime ${regime} exited ${String(err.code)}:\n${(err.stdout ?? '').slice(-3000)}\n${(err.stderr ?? '').slice(-3000)}`,
    );
  });
}

/**
 * Every `npm run bench:*` in a short smoke mode, so that a bench cannot break silently
 * (say, when the service gains a required setting). The npm scripts are `build`, the bench
 * compile, then `node dist/bench/<name>.js`: this file checks that shape and runs the last
 * step with tiny parameters; the figures are not looked at, only that a report came out.
 */
describe('benchmarks (smoke mode)', () => {
  let results: string;

  const BENCHES: Bench[] = [
    {
      name: 'search',
      args: [
        '--rows',
        '300',
        '--queries',
        '5',
        '--duration-s',
        '1',
        '--warmup-queries',
        '2',
        '--concurrency',
        '1',
        '--ef-sweep',
        '40',
        '--paired-rounds',
        '2',
        '--paired-round-s',
        '1',
      ],
      env: { BENCH_SEARCH_DB: SEARCH_DB },
    },
    {
      name: 'cache',
      args: [
        '--recipes',
        '200',
        '--bare-rounds',
        '2',
        '--warmup-s',
        '1',
        '--duration-s',
        '1',
        '--inproc-iterations',
        '100',
        '--inproc-ids',
        '50',
        '--wb-updates',
        '20',
        '--wb-rate',
        '20',
        '--wb-settle-s',
        '1',
        '--wb-probe',
        '5',
        '--no-kill',
        '--search-recipes',
        '200',
        '--search-queries',
        '20',
        '--mixed-warmup-s',
        '0',
        '--mixed-duration-s',
        '2',
      ],
      env: { BENCH_CACHE_DB: CACHE_DB },
    },
    { name: 'failover', args: [], env: { BENCH_FAILOVER_RUNS: '1' } },
    // after search: its runs write search-*.json files where the search case counts its own
    {
      name: 'growth',
      args: ['--sizes', '300,600', '--queries', '3', '--tag', 'smoke'],
      env: { BENCH_SEARCH_DB: GROWTH_DB },
    },
    { name: 'reads', args: [], env: { BENCH_READS_SECONDS: '1' } },
    {
      // a full and a differential backup of the stack's cluster and one validation (restore
      // into a scratch instance + the four checks), on bench:search's 300 rows loaded just
      // before (reused: same database, same row count). pgBackRest backs up the whole
      // cluster: on a developer's stack with a loaded 100,000-row dbu_bench this takes
      // minutes (bench:backup --own-stack isolates it, at the cost of a stack start)
      name: 'backup',
      args: ['--rows', '300', '--port', '20191'],
      env: { BENCH_SEARCH_DB: SEARCH_DB },
    },
  ];

  beforeAll(async () => {
    results = await mkdtemp(join(tmpdir(), 'dbu-bench-smoke-'));
    await run(
      process.execPath,
      [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'bench/tsconfig.json'],
      {
        cwd: REPO_ROOT,
      },
    );
  }, 180_000);

  afterAll(async () => {
    await rm(results, { recursive: true, force: true });
    const env = await stackEnv();
    const primaryPort = Number(env.DB_NODES.split(',')[0].split(':')[1]);
    for (const db of [SEARCH_DB, CACHE_DB, SEARCH_INCR_DB, GROWTH_DB, SEARCH_LOADER_DB]) {
      await superQuery(env, primaryPort, 'postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  });

  it('has an npm script for each bench: build, compile the benches, run it', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const benchScripts = Object.keys(pkg.scripts).filter((s) => s.startsWith('bench:'));
    expect(benchScripts.sort()).toEqual(BENCHES.map((b) => `bench:${b.name}`).sort());
    for (const b of BENCHES) {
      expect(pkg.scripts[`bench:${b.name}`]).toBe(
        `npm run --silent build && tsc -p bench/tsconfig.json && node dist/bench/${b.name}.js`,
      );
    }
  });

  it.each(BENCHES.map((b) => [b.name, b] as const))(
    'bench:%s runs to its report',
    async (name, bench) => {
      const out = await run(
        process.execPath,
        [join('dist', 'bench', `${name}.js`), ...bench.args],
        {
          cwd: REPO_ROOT,
          env: { ...process.env, ...bench.env, BENCH_RESULTS_DIR: results },
          maxBuffer: 64 * 1024 * 1024,
          timeout: 600_000,
        },
      ).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
        throw new Error(
          `bench:${name} exited ${String(err.code)}:\n${(err.stdout ?? '').slice(-3000)}\n${(err.stderr ?? '').slice(-3000)}`,
        );
      });
      const files = (await readdir(results)).filter(
        (f) => f.startsWith(`${name}-`) && f.endsWith('.json'),
      );
      expect(files).toHaveLength(1);
      const report = JSON.parse(await readFile(join(results, files[0]), 'utf8')) as Record<
        string,
        unknown
      >;
      expect(report.benchmark).toBe(name);
      switch (name) {
        case 'search': {
          const r = report.results as {
            http: Record<string, unknown>;
            rawSql: Record<string, unknown>;
          };
          // the HTTP half ran (it used to be skipped silently when the service did not boot)
          expect(r).not.toHaveProperty('httpSkipped');
          expect(Object.keys(r.http ?? {}).length).toBeGreaterThan(0);
          expect(Object.keys(r.rawSql).length).toBeGreaterThan(0);
          // --paired-rounds: both sides alternately, every case and round measured
          const paired = (report.results as { paired?: Record<string, unknown> }).paired as {
            cases: Record<string, { apiP50: number; rawSqlP50: number; ratio: number }>;
            rounds: Array<{ apiQps: number; rawSqlQps: number }>;
          };
          expect(Object.keys(paired.cases)).toHaveLength(4);
          for (const c of Object.values(paired.cases)) {
            expect(c.apiP50).toBeGreaterThan(0);
            expect(c.rawSqlP50).toBeGreaterThan(0);
          }
          expect(paired.rounds).toHaveLength(2);
          expect(paired.rounds.every((x) => x.apiQps > 0 && x.rawSqlQps > 0)).toBe(true);
          break;
        }
        case 'cache': {
          const r = report.results as {
            http: {
              cacheOn: { hitRates: unknown; sampleBody: string };
              bare: {
                measured: { rps: number; errors: number };
                serviceUsPerRequest: number;
                responseBytes: number;
              };
              pairedBare: {
                rounds: Array<{
                  order: string;
                  cachedRps: number;
                  bareRps: number;
                  uncachedRps: number;
                }>;
                medianRatio: number;
              };
            };
          };
          // --bare-rounds 2: the three sides in rotated order, each round measured
          expect(r.http.pairedBare.rounds.map((x) => x.order)).toEqual([
            'cached, bare, uncached',
            'bare, uncached, cached',
          ]);
          expect(
            r.http.pairedBare.rounds.every(
              (x) => x.cachedRps > 0 && x.bareRps > 0 && x.uncachedRps > 0,
            ),
          ).toBe(true);
          expect(r.http.pairedBare.medianRatio).toBeGreaterThan(0);
          expect(r.http.cacheOn.hitRates).toBeDefined();
          // the bare NestJS + Fastify route ran beside it, with the service's own body
          expect(r.http.bare.measured.rps).toBeGreaterThan(0);
          expect(r.http.bare.measured.errors).toBe(0);
          expect(r.http.bare.serviceUsPerRequest).toBeGreaterThan(0);
          expect(r.http.bare.responseBytes).toBe(Buffer.byteLength(r.http.cacheOn.sampleBody));
          expect(report.targets).toEqual(
            expect.arrayContaining([
              expect.objectContaining({
                name: 'cached GET / bare NestJS + Fastify route throughput',
              }),
            ]),
          );
          break;
        }
        case 'failover': {
          const summary = report.summary as Array<{ writesResumedInAllRuns: boolean }>;
          expect(summary.map((s) => s.writesResumedInAllRuns)).toEqual([true, true]);
          break;
        }
        case 'backup': {
          const r = report.results as {
            full: { label: string | null };
            diff: { label: string | null };
            validation: { status: string; checks: Record<string, unknown> };
          };
          expect(r.full.label).toMatch(/F$/);
          expect(r.diff.label).toMatch(/D$/);
          // the validation ran to its end with the four checks (the figures are not judged)
          expect(['passed', 'failed']).toContain(r.validation.status);
          expect(Object.keys(r.validation.checks).sort()).toEqual([
            'data_integrity_check',
            'performance_validation',
            'recovery_time_measurement',
            'restore_test',
          ]);
          break;
        }
        case 'growth': {
          const points = report.points as Array<{
            rows: number;
            storage: string;
            definition: string;
            cases: Record<string, { recall: number }>;
          }>;
          expect(points.map((p) => `${p.rows} ${p.storage}`)).toEqual([
            '300 vector',
            '300 halfvec',
            '600 vector',
            '600 halfvec',
          ]);
          for (const p of points) {
            expect(p.definition).toContain(
              p.storage === 'halfvec' ? 'halfvec_cosine_ops' : 'embedding vector_cosine_ops',
            );
            expect(Object.keys(p.cases)).toContain('unfiltered');
          }
          const svg = await readFile(join(results, files[0].replace(/\.json$/, '.svg')), 'utf8');
          expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
          expect(svg.match(/<path /g)).toHaveLength(10);
          break;
        }
        case 'reads': {
          const r = report.results as Array<{ errors: number; requestsPerSecond: number }>;
          expect(r).toHaveLength(5);
          expect(r.every((c) => c.requestsPerSecond > 0)).toBe(true);
          break;
        }
      }
      expect(out.stdout + out.stderr).toContain(files[0]);
    },
    600_000,
  );

  it('bench:search --regime loader runs npm run recipes:load and COPY in alternating rounds, and deletes what they wrote', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dbu-bench-smoke-loader-'));
    try {
      await searchRegime(
        'loader',
        '--rows 300 --second-rows 200 --queries 3',
        SEARCH_LOADER_DB,
        dir,
      );
      const files = (await readdir(dir)).filter((f) => f.endsWith('-loader.json'));
      expect(files).toHaveLength(1);
      const report = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as {
        mode: string;
        results: {
          tableRowsBefore: number;
          rounds: number;
          loader: { rows: number; rowsPerS: number };
          copy: { rows: number; rowsPerS: number };
        };
      };
      expect(report.mode).toBe('loader');
      expect(report.results.tableRowsBefore).toBe(300);
      expect(report.results.rounds).toBe(2);
      expect(report.results.loader.rows).toBe(200);
      expect(report.results.copy.rows).toBe(200);
      expect(report.results.loader.rowsPerS).toBeGreaterThan(0);
      const env = await stackEnv();
      const primaryPort = Number(env.DB_NODES.split(',')[0].split(':')[1]);
      const left = await superQuery(
        env,
        primaryPort,
        SEARCH_LOADER_DB,
        'SELECT count(*)::int AS n FROM recipes',
      );
      expect(left.rows[0]).toEqual({ n: 300 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bench:search --regime incremental writes through the API and bare SQL, deletes, vacuums, and reports each phase', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dbu-bench-smoke-incr-'));
    try {
      await searchRegime(
        'incremental',
        '--rows 300 --second-rows 400 --queries 3 --warmup-queries 0 --service-env VECTOR_WITNESS_REFRESH_S=1',
        SEARCH_INCR_DB,
        dir,
      );
      const files = (await readdir(dir)).filter((f) => f.endsWith('-incremental.json'));
      expect(files).toHaveLength(1);
      const report = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as {
        mode: string;
        results: {
          insert: { api: { batches: number }; rawSql: { batches: number } };
          deleted: number;
          phases: Array<{ phase: string; service: Record<string, { recall: number }> }>;
        };
      };
      expect(report.mode).toBe('incremental');
      // 4 batches of 100, alternating: 2 through the API, 2 as bare INSERTs
      expect(report.results.insert.api.batches).toBe(2);
      expect(report.results.insert.rawSql.batches).toBe(2);
      expect(report.results.deleted).toBeGreaterThan(0);
      const phases = report.results.phases.map((p) => p.phase);
      expect(phases[0]).toBe('after population B');
      expect(phases[1]).toBe('after delete, before VACUUM');
      expect(phases[phases.length - 1]).toBe('after VACUUM');
      for (const p of report.results.phases) {
        expect(Object.keys(p.service).sort()).toEqual(
          ['cuisine=italian', 'dietary@>vegan', 'tags@>quick', 'unfiltered'].sort(),
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);

  /** Runs `dist/bench/cache.js` with `args` on the smoke database, its report into `dir`. */
  const runCacheBench = (args: string[], dir: string) =>
    run(process.execPath, [join('dist', 'bench', 'cache.js'), ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, BENCH_CACHE_DB: CACHE_DB, BENCH_RESULTS_DIR: dir },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
    }).catch((err: { code?: number; stdout?: string; stderr?: string }) => {
      throw new Error(
        `bench:cache ${args.join(' ')} exited ${String(err.code)}:\n${(err.stdout ?? '').slice(-3000)}\n${(err.stderr ?? '').slice(-3000)}`,
      );
    });

  it('bench:cache --monitoring-ab runs both sides, publishes to its local CloudWatch and measures idle CPU', async () => {
    // after 'bench:cache runs to its report': its 200 recipes are loaded (--skip-load)
    const dir = await mkdtemp(join(tmpdir(), 'dbu-bench-smoke-ab-'));
    try {
      const out = await runCacheBench(
        [
          '--monitoring-ab',
          '--skip-load',
          '--recipes',
          '200',
          '--ab-rounds',
          '2',
          '--warmup-s',
          '1',
          '--duration-s',
          '3',
          '--ab-idle-s',
          '1',
          '--ab-cloudwatch-interval-s',
          '1',
        ],
        dir,
      );
      const files = await readdir(dir);
      expect(files).toEqual([expect.stringMatching(/^cache-.*-monitoring-ab\.json$/)]);
      const report = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as {
        results: {
          monitoringAb: {
            order: string[];
            rounds: Array<{
              side: string;
              rps: number;
              cloudwatchPuts: number;
              idleCpuMsPerS: number;
            }>;
            verdict: string;
            backgroundCorePct: number;
          };
        };
      };
      const ab = report.results.monitoringAb;
      expect(ab.order).toEqual(['off', 'on']);
      expect(ab.rounds.map((r) => r.side)).toEqual(['off', 'on']);
      expect(ab.rounds.every((r) => r.rps > 0 && r.idleCpuMsPerS > 0)).toBe(true);
      // the publisher really sent to the bench's endpoint on the "on" side only
      expect(ab.rounds.map((r) => r.cloudwatchPuts > 0)).toEqual([false, true]);
      expect(['PASS', 'FAIL']).toContain(ab.verdict);
      expect(typeof ab.backgroundCorePct).toBe('number');
      expect(out.stdout + out.stderr).toContain('background work (idle CPU on − off)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);

  it('bench:cache --monitoring-ab --ab-paired measures both sides in the same round', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dbu-bench-smoke-paired-'));
    try {
      await runCacheBench(
        (
          '--monitoring-ab --ab-paired --skip-load --recipes 200 --ab-rounds 2 --warmup-s 1 ' +
          '--duration-s 2 --ab-idle-s 0 --tag paired-smoke'
        ).split(' '),
        dir,
      );
      const files = await readdir(dir);
      expect(files).toEqual([expect.stringMatching(/^cache-.*-paired-smoke\.json$/)]);
      const report = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as {
        results: {
          monitoringAb: {
            rounds: Array<{ round: number; side: string; rps: number; startedAt: string }>;
            paired: Array<{ round: number; rpsPct: number; cpuPct: number }>;
            differencePct: number;
          };
        };
      };
      const ab = report.results.monitoringAb;
      // each round ran both sides, started in the ABBA order, measured in the same window
      expect(ab.rounds.map((r) => [r.round, r.side])).toEqual([
        [1, 'off'],
        [1, 'on'],
        [2, 'on'],
        [2, 'off'],
      ]);
      expect(ab.rounds.every((r) => r.rps > 0)).toBe(true);
      expect(ab.rounds[0].startedAt).toBe(ab.rounds[1].startedAt);
      expect(ab.paired.map((p) => p.round)).toEqual([1, 2]);
      const sorted = ab.paired.map((p) => p.rpsPct).sort((a, b) => a - b);
      expect(ab.differencePct).toBeCloseTo((sorted[0] + sorted[1]) / 2, 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
