/**
 * `npm run bench:failover`: the failover scenario RUNS times per replication mode on a
 * throwaway stack of its own (never the shared one): a writer loop against the built
 * service, SIGKILL of the primary, the service promotes the replica. Reports the time
 * from the kill to the first acknowledged write (median, worst), acknowledged writes
 * lost (synchronous vs asynchronous replication), and HTTP 500s.
 *
 * Knobs (env): BENCH_FAILOVER_RUNS (5).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { BenchStack } from './lib/isolated-stack.js';
import { hostInfo } from './lib/machine.js';
import { log } from './lib/progress.js';
import { resultsDir } from './lib/paths.js';
import { freePort, HttpClient, ServiceProcess } from './lib/service.js';
import { round } from './lib/stats.js';

const REPO_DIR = path.resolve(import.meta.dirname, '..', '..');
const PORTS = { primary: 28442, replica: 28443, pgbouncer: 28542, redis: 28389 };
const RUNS = Number(process.env.BENCH_FAILOVER_RUNS ?? 5);
const AFTER_OUTAGE_WRITES = 20;

const iso = new BenchStack(REPO_DIR, 'bench-failover', PORTS, '128MB');
const STACK_DIR = iso.dir;
const stack = (...args: string[]): Promise<string> => iso.run(...args);

async function su(port: number, sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({
    host: path.join(STACK_DIR, 'run'),
    port,
    user: 'postgres',
    database: 'recipes',
  });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

interface RunResult {
  mode: 'sync' | 'async';
  timeToFirstWriteMs: number | null;
  acked: number;
  lost: number;
  http503: number;
  http500: number;
  missingRetryAfter: number;
}

async function once(mode: 'sync' | 'async'): Promise<RunResult> {
  await stack('down').catch(() => '');
  await rm(STACK_DIR, { recursive: true, force: true });
  await stack('up');
  if (mode === 'sync') {
    await su(PORTS.primary, `ALTER SYSTEM SET synchronous_standby_names = '*'`);
    await su(PORTS.primary, 'SELECT pg_reload_conf()');
  }
  const vars = await iso.vars();
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const service = ServiceProcess.start(
    REPO_DIR,
    {
      ...vars,
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      JOBS_ENABLED: 'false',
      FAILOVER_MODE: 'auto',
      DB_HEALTH_INTERVAL_MS: '300',
      DB_HEALTH_TIMEOUT_MS: '1000',
      DB_UNHEALTHY_THRESHOLD: '2',
      DB_HEALTHY_THRESHOLD: '2',
      DB_CONNECT_TIMEOUT_MS: '2000',
      DB_QUERY_TIMEOUT_MS: '3000',
      FAILOVER_RETRY_AFTER_S: '1',
      API_KEYS: JSON.stringify([
        {
          id: 'bench-failover',
          hash: createHash('sha256').update(secret).digest('hex'),
          scopes: ['ops:admin', 'ops:read'],
        },
      ]),
    },
    port,
  );
  const http = new HttpClient('127.0.0.1', port, 4);
  const auth = { authorization: `Bearer ${secret}` };
  const r: RunResult = {
    mode,
    timeToFirstWriteMs: null,
    acked: 0,
    lost: 0,
    http503: 0,
    http500: 0,
    missingRetryAfter: 0,
  };
  try {
    await service.waitReady(http, 120_000);
    const acked: string[] = [];
    let killedAt: number | null = null;
    let outage = false;
    let after = 0;
    const body = Buffer.from(JSON.stringify({ note: 'bench' }));
    const killer = (async () => {
      await sleep(1_000);
      killedAt = Date.now();
      await stack('kill', 'primary');
    })();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && after < AFTER_OUTAGE_WRITES) {
      const sent = Date.now();
      const res = await http
        .request('POST', '/v1/ops/probes', body, auth)
        .catch(() => ({ status: 0, body: '' }));
      if (res.status === 201) {
        acked.push((JSON.parse(res.body) as { id: string }).id);
        if (outage && killedAt !== null) {
          r.timeToFirstWriteMs ??= Date.now() - killedAt;
          after += 1;
        }
      } else {
        outage ||= killedAt !== null && sent >= killedAt;
        if (res.status === 503) {
          r.http503 += 1;
        } else {
          r.http500 += 1;
        }
        await sleep(50);
      }
    }
    await killer;
    const found = new Set(
      (await su(PORTS.replica, 'SELECT id::text AS id FROM ops_probes')).rows.map(
        (x) => x.id as string,
      ),
    );
    r.acked = acked.length;
    r.lost = acked.filter((id) => !found.has(id)).length;
    return r;
  } finally {
    http.close();
    await service.stop();
    await stack('down').catch(() => '');
    await rm(STACK_DIR, { recursive: true, force: true });
  }
}

function median(xs: number[]): number | null {
  if (xs.length === 0) {
    return null;
  }
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function main(): Promise<void> {
  const runs: RunResult[] = [];
  for (const mode of ['sync', 'async'] as const) {
    for (let i = 1; i <= RUNS; i++) {
      const r = await once(mode);
      log(
        `${mode} run ${i}/${RUNS}: first write ${r.timeToFirstWriteMs ?? '-'} ms after the kill, ${r.lost}/${r.acked} acknowledged writes lost, ${r.http503} × 503, ${r.http500} × other`,
      );
      runs.push(r);
    }
  }
  const summary = (['sync', 'async'] as const).map((mode) => {
    const rs = runs.filter((r) => r.mode === mode);
    const t = rs.map((r) => r.timeToFirstWriteMs).filter((x): x is number => x !== null);
    return {
      mode,
      runs: rs.length,
      timeToFirstWriteMs: { median: median(t), worst: t.length ? Math.max(...t) : null },
      writesResumedInAllRuns: t.length === rs.length,
      lostAcknowledged: {
        total: rs.reduce((n, r) => n + r.lost, 0),
        perRun: rs.map((r) => r.lost),
      },
      http500: rs.reduce((n, r) => n + r.http500, 0),
      http503: rs.reduce((n, r) => n + r.http503, 0),
    };
  });
  const report = {
    benchmark: 'failover',
    date: new Date().toISOString(),
    host: await hostInfo(REPO_DIR),
    settings: {
      checkIntervalMs: 300,
      checkTimeoutMs: 1000,
      unhealthyThreshold: 2,
      queryTimeoutMs: 3000,
    },
    targets: { timeToFirstWriteMs: 10_000, lostWithSync: 0, http500: 0 },
    summary,
    runs: runs.map((r) => ({
      ...r,
      timeToFirstWriteMs: r.timeToFirstWriteMs === null ? null : round(r.timeToFirstWriteMs, 0),
    })),
  };
  const out = path.join(resultsDir(), `failover-${report.date.slice(0, 10)}.json`);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  log(JSON.stringify(summary, null, 2));
  log(`report: ${path.relative(REPO_DIR, out)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
