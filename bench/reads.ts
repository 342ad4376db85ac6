/**
 * `npm run bench:reads`: read throughput of the built service with the writer only,
 * writer + 1 and writer + 2 replicas, directly and through PgBouncer, on a throwaway
 * stack of its own (`docker/stack.sh` + `add-replica`). The load is GET
 * /v1/ops/probes/:id (one indexed row, routed like every read).
 *
 * Knobs (env): BENCH_READS_SECONDS (8), BENCH_READS_CONCURRENCY (16).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchStack } from './lib/isolated-stack.js';
import { hostInfo } from './lib/machine.js';
import { log } from './lib/progress.js';
import { resultsDir } from './lib/paths.js';
import { freePort, HttpClient, ServiceProcess } from './lib/service.js';
import { summarize } from './lib/stats.js';

const REPO_DIR = path.resolve(import.meta.dirname, '..', '..');
const PORTS = { primary: 28472, replica: 28473, pgbouncer: 28572, redis: 28409 };
const EXTRA = 28474;
const SECONDS = Number(process.env.BENCH_READS_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_READS_CONCURRENCY ?? 16);

const iso = new BenchStack(REPO_DIR, 'bench-reads', PORTS, '256MB');
const STACK_DIR = iso.dir;
const stack = (...args: string[]): Promise<string> => iso.run(...args);

interface Case {
  name: string;
  replicas: 0 | 1 | 2;
  viaPgBouncer: boolean;
}

const CASES: Case[] = [
  { name: 'direct, writer only', replicas: 0, viaPgBouncer: false },
  { name: 'direct, writer + 1 replica', replicas: 1, viaPgBouncer: false },
  { name: 'direct, writer + 2 replicas', replicas: 2, viaPgBouncer: false },
  { name: 'PgBouncer, writer only', replicas: 0, viaPgBouncer: true },
  { name: 'PgBouncer, writer + 1 replica', replicas: 1, viaPgBouncer: true },
];

async function measure(vars: Record<string, string>, c: Case): Promise<Record<string, unknown>> {
  const nodes = [PORTS.primary, PORTS.replica, EXTRA]
    .slice(0, 1 + c.replicas)
    .map((p) => `127.0.0.1:${p}`);
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const service = ServiceProcess.start(
    REPO_DIR,
    {
      ...vars,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      JOBS_ENABLED: 'false',
      FAILOVER_MODE: 'off',
      DB_POOL_EVAL_INTERVAL_MS: '0',
      DB_NODES: nodes.join(','),
      DB_ROUTE_VIA_PGBOUNCER: String(c.viaPgBouncer),
      // Without replicas PgBouncer's read entry is the read-write one.
      PGBOUNCER_DB_RO: c.replicas === 0 ? 'recipes' : 'recipes_ro',
      RATE_LIMIT_LIMIT: '10000000',
      API_KEYS: JSON.stringify([
        {
          id: 'bench-reads',
          hash: createHash('sha256').update(secret).digest('hex'),
          scopes: ['ops:admin', 'ops:read'],
        },
      ]),
    },
    port,
  );
  const http = new HttpClient('127.0.0.1', port, CONCURRENCY);
  const auth = { authorization: `Bearer ${secret}` };
  try {
    await service.waitReady(http, 120_000);
    const created = await http.request(
      'POST',
      '/v1/ops/probes',
      Buffer.from('{"note":"bench"}'),
      auth,
    );
    const id = (JSON.parse(created.body) as { id: string }).id;
    await sleep(1_000); // replicated everywhere
    const servedBy = new Map<number, number>();
    const latencies: number[] = [];
    let errors = 0;
    const loop = async (until: number, record: boolean): Promise<void> => {
      while (Date.now() < until) {
        const t0 = performance.now();
        const res = await http
          .request('GET', `/v1/ops/probes/${id}`, undefined, auth)
          .catch(() => ({ status: 0, body: '' }));
        if (!record) {
          continue;
        }
        if (res.status === 200) {
          latencies.push(performance.now() - t0);
          const p = (JSON.parse(res.body) as { servedBy: { port: number } }).servedBy.port;
          servedBy.set(p, (servedBy.get(p) ?? 0) + 1);
        } else {
          errors += 1;
        }
      }
    };
    const warm = Date.now() + 2_000;
    await Promise.all(Array.from({ length: CONCURRENCY }, () => loop(warm, false)));
    const end = Date.now() + SECONDS * 1_000;
    await Promise.all(Array.from({ length: CONCURRENCY }, () => loop(end, true)));
    return {
      case: c.name,
      nodes,
      requestsPerSecond: Math.round(latencies.length / SECONDS),
      latencyMs: summarize(latencies),
      errors,
      servedByPort: Object.fromEntries(servedBy),
    };
  } finally {
    http.close();
    await service.stop();
  }
}

async function main(): Promise<void> {
  await stack('down').catch(() => '');
  await rm(STACK_DIR, { recursive: true, force: true });
  await stack('up');
  await stack('add-replica', String(EXTRA));
  const vars = await iso.vars();
  const results: Array<Record<string, unknown>> = [];
  try {
    for (const c of CASES) {
      const r = await measure(vars, c);
      log(
        `${c.name}: ${String(r.requestsPerSecond)} req/s, p50 ${(r.latencyMs as { p50: number }).p50} ms, errors ${String(r.errors)}, served by ${JSON.stringify(r.servedByPort)}`,
      );
      results.push(r);
    }
  } finally {
    await stack('down').catch(() => '');
    await rm(STACK_DIR, { recursive: true, force: true });
  }
  const report = {
    benchmark: 'reads',
    date: new Date().toISOString(),
    host: await hostInfo(REPO_DIR),
    settings: { seconds: SECONDS, concurrency: CONCURRENCY, route: 'GET /v1/ops/probes/:id' },
    results,
  };
  const out = path.join(resultsDir(), `reads-${report.date.slice(0, 10)}.json`);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  log(`report: ${path.relative(REPO_DIR, out)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
