/**
 * `--monitoring-ab` (issue 12): the hot path's cost of monitoring, performance insights
 * sampling, the dashboard sampler, alerting and the CloudWatch publisher, in one run.
 *
 * Rounds alternate `off,on,on,off,off,on,on,off,…` (ABBA), each with a freshly started
 * service (so the idle side's timers never run during the other side's measurement), a
 * warm-up and a measured closed loop of the bench's own HTTP workload. The report gives
 * every round's req/s, the median of each side, the difference in % and PASS/FAIL
 * against the target (≤ 3 %).
 *
 * The CloudWatch publisher talks to the tests' local endpoint
 * (test/support/fake-cloudwatch.ts) run in a child process (cloudwatch-endpoint.ts), which
 * answers PutMetricData the way CloudWatch does (awsJson1_0, `X-Amz-Target:
 * GraniteServiceVersion20100801.PutMetricData`, gzip above 10 KB). After each measured
 * phase an idle phase measures the service's CPU with no load: the background work alone.
 */
import { fork } from 'node:child_process';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { log } from './progress.js';
import type { LatencySummary } from './stats.js';
import type { EndpointCounts } from './cloudwatch-endpoint.js';
import { round } from './stats.js';

export const MONITORING_AB_TARGET_PCT = 3;

/** Everything off: sampler, insights, dashboard sampler, alerting, CloudWatch publisher. */
export const MONITORING_OFF_ENV: Readonly<Record<string, string>> = {
  MONITORING_DB_SAMPLE_SECONDS: '0',
  INSIGHTS_SAMPLE_INTERVAL_MS: '0',
  DASHBOARD_SAMPLE_SECONDS: '0',
  ALERTING_ENABLED: 'false',
  CLOUDWATCH_ENABLED: 'false',
};

/** The parts that `--ab-only` can switch on alone (the rest stays off). */
export const AB_COMPONENTS = [
  'sampler',
  'insights',
  'dashboard',
  'alerting',
  'cloudwatch',
] as const;
export type AbComponent = (typeof AB_COMPONENTS)[number];

function componentEnv(
  component: AbComponent,
  endpoint: string,
  intervalS: number,
): Record<string, string> {
  switch (component) {
    case 'sampler':
      return { MONITORING_DB_SAMPLE_SECONDS: '15' };
    case 'insights':
      return { INSIGHTS_SAMPLE_INTERVAL_MS: '1000' };
    case 'dashboard':
      return { DASHBOARD_SAMPLE_SECONDS: '5' };
    case 'alerting':
      // rules are evaluated by the sampler's leader: alerting alone is sampler + alerting
      return { MONITORING_DB_SAMPLE_SECONDS: '15', ALERTING_ENABLED: 'true' };
    case 'cloudwatch':
      return {
        CLOUDWATCH_ENABLED: 'true',
        CLOUDWATCH_ENDPOINT: endpoint,
        CLOUDWATCH_REGION: 'us-east-1',
        CLOUDWATCH_INTERVAL_SECONDS: String(intervalS),
        // the local endpoint does not check signatures; the SDK needs some credentials
        AWS_ACCESS_KEY_ID: 'AKIDBENCH',
        AWS_SECRET_ACCESS_KEY: 'bench-secret',
      };
  }
}

/**
 * The defaults (15 s, 1 s, 5 s, alerting on) plus the publisher against `endpoint`; with
 * `only`, everything off but that component (to find which part costs what).
 */
export function monitoringOnEnv(
  endpoint: string,
  intervalS: number,
  only: AbComponent | null = null,
): Record<string, string> {
  if (only) {
    return { ...MONITORING_OFF_ENV, ...componentEnv(only, endpoint, intervalS) };
  }
  return Object.assign(
    {},
    ...AB_COMPONENTS.map((c) => componentEnv(c, endpoint, intervalS)),
  ) as Record<string, string>;
}

/** `--ab-only` parsed: null for everything, or one of AB_COMPONENTS. */
export function parseAbOnly(v: string): AbComponent | null {
  if (v === '' || v === 'all') {
    return null;
  }
  if (!(AB_COMPONENTS as readonly string[]).includes(v)) {
    throw new Error(`--ab-only must be one of all, ${AB_COMPONENTS.join(', ')}, got '${v}'`);
  }
  return v as AbComponent;
}

export interface LocalCloudWatch {
  url: string;
  /** What the endpoint received so far. */
  counts(): Promise<EndpointCounts>;
  close(): Promise<void>;
}

/**
 * Forks bench/lib/cloudwatch-endpoint.ts (the tests' CloudWatch stand-in in a process of
 * its own, away from the load generator's event loop) and waits for its address.
 */
export async function startLocalCloudWatch(): Promise<LocalCloudWatch> {
  const script = fileURLToPath(new URL('./cloudwatch-endpoint.js', import.meta.url));
  const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>(key: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: Record<string, unknown>) => {
        if (key in m) {
          cleanup();
          resolve(m[key] as T);
        }
      };
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`the local CloudWatch endpoint exited (${String(code)})`));
      };
      const cleanup = () => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const url = await next<string>('url');
  return {
    url,
    counts: () => {
      const answer = next<EndpointCounts>('counts');
      child.send('counts');
      return answer;
    },
    close: async () => {
      if (child.exitCode !== null) {
        return;
      }
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send('close');
      await exited;
    },
  };
}

export type AbSide = 'off' | 'on';

/** What the bench's measured loop gives back. */
export interface AbLoop {
  seconds: number;
  completed: number;
  errors: number;
  rps: number;
  latencyMs: LatencySummary;
}

/** A service started for one round; `evidence` scrapes what shows the monitoring ran. */
export interface AbService {
  bootS: number;
  warmup(label: string): Promise<unknown>;
  measure(label: string): Promise<AbLoop>;
  /** e.g. metric values from /metrics after the measured phase */
  evidence(): Promise<Record<string, number | null>>;
  /** the service's process_cpu_seconds_total (read before and after the measured phase) */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export interface AbRound {
  round: number;
  side: AbSide;
  startedAt: string;
  bootS: number;
  rps: number;
  completed: number;
  errors: number;
  seconds: number;
  latencyMs: LatencySummary;
  /** the service's CPU time per completed request in the measured phase, µs */
  cpuUsPerRequest: number;
  /**
   * The service's CPU while it serves nothing, in ms per second, over the idle phase after
   * the measured one: what the background work alone costs (null without an idle phase).
   */
  idleCpuMsPerS: number | null;
  /** PutMetricData calls / datums the local endpoint received during the measured phase */
  cloudwatchPuts: number;
  cloudwatchDatums: number;
  evidence: Record<string, number | null>;
  loadAverage1m: number;
}

export interface AbSideSummary {
  rounds: number;
  medianRps: number;
  minRps: number;
  maxRps: number;
  /** medians over the rounds of each round's p50 / p95 */
  p50Ms: number;
  p95Ms: number;
  errors: number;
  /** median of the rounds' service CPU µs per request */
  cpuUsPerRequest: number;
  /** median of the rounds' idle CPU, ms per second (null without an idle phase) */
  idleCpuMsPerS: number | null;
}

/**
 * Another comparison run by the same A/B machinery (e.g. `--tls-ab`): its own env of each
 * side and target; no CloudWatch endpoint is started.
 */
export interface AbComparison {
  /** what is compared: 'tls' (rounds are labelled `tls-ab`) */
  name: string;
  envOff: Record<string, string>;
  envOn: Record<string, string>;
  targetPct: number;
}

export interface MonitoringAbReport {
  /** 'monitoring', or the AbComparison's name */
  compare: string;
  workload: string;
  /** the "on" side: every component, or only this one */
  only: AbComponent | 'all';
  order: AbSide[];
  /**
   * `--ab-paired`: each round's (on − off) / off of req/s and of CPU per request, in %;
   * `order` is then the side each round started first. null for sequential rounds.
   */
  paired: { round: number; rpsPct: number; cpuPct: number }[] | null;
  warmupS: number;
  durationS: number;
  idleS: number;
  cloudwatchIntervalS: number;
  envOff: Record<string, string>;
  envOn: Record<string, string>;
  rounds: AbRound[];
  off: AbSideSummary;
  on: AbSideSummary;
  /**
   * (on − off) / off of the medians, in %: negative means slower with monitoring on
   * (paired: the median of the rounds' own differences)
   */
  differencePct: number;
  /** (on − off) / off of the median CPU µs per request, in %: positive means costlier */
  cpuDifferencePct: number;
  /**
   * The background work's share of one core: (idle CPU on − idle CPU off) / 1000 ms, in %.
   * A service whose event loop is saturated loses about this much throughput to it.
   */
  backgroundCorePct: number | null;
  targetPct: number;
  verdict: 'PASS' | 'FAIL';
  cloudwatch: { puts: number; datums: number; wireBytes: number; otherCalls: number };
  loadAverage: { start: number[]; end: number[] };
  notes: string[];
}

/** off,on,on,off,off,on,on,off,… */
export function abOrder(rounds: number): AbSide[] {
  const pattern: AbSide[] = ['off', 'on', 'on', 'off'];
  return Array.from({ length: rounds }, (_, i) => pattern[i % 4]);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) {
    return Number.NaN;
  }
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function summarizeSide(rounds: AbRound[]): AbSideSummary {
  const rps = rounds.map((r) => r.rps);
  return {
    rounds: rounds.length,
    medianRps: round(median(rps), 1),
    minRps: round(Math.min(...rps), 1),
    maxRps: round(Math.max(...rps), 1),
    p50Ms: round(median(rounds.map((r) => r.latencyMs.p50))),
    p95Ms: round(median(rounds.map((r) => r.latencyMs.p95))),
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    cpuUsPerRequest: round(median(rounds.map((r) => r.cpuUsPerRequest)), 1),
    idleCpuMsPerS: rounds.every((r) => r.idleCpuMsPerS !== null)
      ? round(median(rounds.map((r) => r.idleCpuMsPerS as number)), 2)
      : null,
  };
}

/**
 * Runs the A/B rounds. `start(env)` starts the service with the given monitoring
 * settings (added last, so they win over the bench's own) and returns its handle.
 */
export async function runMonitoringAb(opts: {
  workload: string;
  rounds: number;
  warmupS: number;
  durationS: number;
  /** seconds of no load after the measured phase, to measure the background CPU (0: none) */
  idleS: number;
  cloudwatchIntervalS: number;
  only?: AbComponent | null;
  /** compare something else than monitoring off/on */
  comparison?: AbComparison;
  /**
   * Both sides at once in every round (`--ab-paired`): two services sharing the CPU(s)
   * the bench gives them, each under its own closed loop, so that whatever the machine
   * does during a round (another VM's load, frequency changes) hits both sides alike.
   * The verdict then takes the median of the rounds' paired differences.
   */
  paired?: boolean;
  start: (monitoringEnv: Record<string, string>, side: AbSide) => Promise<AbService>;
}): Promise<MonitoringAbReport> {
  const none: EndpointCounts = { puts: 0, datums: 0, wireBytes: 0, others: 0 };
  const cw = opts.comparison
    ? { url: '', counts: () => Promise.resolve(none), close: () => Promise.resolve() }
    : await startLocalCloudWatch();
  const envOn =
    opts.comparison?.envOn ?? monitoringOnEnv(cw.url, opts.cloudwatchIntervalS, opts.only ?? null);
  const envOff = opts.comparison?.envOff ?? { ...MONITORING_OFF_ENV };
  const name = opts.comparison?.name ?? 'monitoring';
  const targetPct = opts.comparison?.targetPct ?? MONITORING_AB_TARGET_PCT;
  const order = abOrder(opts.rounds);
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const rounds: AbRound[] = [];
  let cwTotal: EndpointCounts;
  try {
    // paired: round i runs both sides at once, started in the order of abOrder's side i
    const plan: AbSide[][] = opts.paired
      ? order.map((first) => (first === 'off' ? ['off', 'on'] : ['on', 'off']))
      : order.map((side) => [side]);
    for (const [i, sides] of plan.entries()) {
      const label = (side: AbSide) =>
        `${name}-ab round ${i + 1}/${plan.length} (${opts.paired ? `paired, ${side}` : side})`;
      const services: [AbSide, AbService][] = [];
      try {
        for (const side of sides) {
          const env = side === 'on' ? envOn : envOff;
          // paired sides must not serve each other's entries from the shared Redis (nor
          // an earlier round's): a cache namespace of their own
          const keys: Record<string, string> = opts.paired
            ? { CACHE_KEY_VERSION: `ab${side}${Date.now().toString(36)}` }
            : {};
          services.push([side, await opts.start({ ...env, ...keys }, side)]);
        }
        const startedAt = new Date().toISOString();
        if (opts.warmupS > 0) {
          await Promise.all(services.map(([side, svc]) => svc.warmup(`${label(side)} warm-up`)));
        }
        const cw0 = await cw.counts();
        const cpu0 = await Promise.all(services.map(([, svc]) => svc.cpuSeconds()));
        const loops = await Promise.all(
          services.map(([side, svc]) => svc.measure(`${label(side)} measured`)),
        );
        const cpu1 = await Promise.all(services.map(([, svc]) => svc.cpuSeconds()));
        const cw1 = await cw.counts();
        const evidence = await Promise.all(services.map(([, svc]) => svc.evidence()));
        let idle: (number | null)[] = services.map(() => null);
        if (opts.idleS > 0) {
          log(`${label(sides[0])} idle ${opts.idleS}s`);
          const t0 = performance.now();
          const idle0 = await Promise.all(services.map(([, svc]) => svc.cpuSeconds()));
          await sleep(opts.idleS * 1000);
          const idle1 = await Promise.all(services.map(([, svc]) => svc.cpuSeconds()));
          const idleS = (performance.now() - t0) / 1000;
          idle = idle1.map((c, k) => round(((c - idle0[k]) * 1000) / idleS, 2));
        }
        for (const [k, [side, svc]] of services.entries()) {
          const loop = loops[k];
          const r: AbRound = {
            round: i + 1,
            side,
            startedAt,
            bootS: round(svc.bootS, 1),
            rps: loop.rps,
            completed: loop.completed,
            errors: loop.errors,
            seconds: loop.seconds,
            latencyMs: loop.latencyMs,
            cpuUsPerRequest: round(((cpu1[k] - cpu0[k]) * 1e6) / Math.max(1, loop.completed), 1),
            idleCpuMsPerS: idle[k],
            cloudwatchPuts: side === 'on' ? cw1.puts - cw0.puts : 0,
            cloudwatchDatums: side === 'on' ? cw1.datums - cw0.datums : 0,
            evidence: evidence[k],
            loadAverage1m: round(os.loadavg()[0], 2),
          };
          rounds.push(r);
          log(
            `${label(side)}: ${r.rps} req/s, p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, ` +
              `service CPU ${r.cpuUsPerRequest} µs/request, ` +
              (r.idleCpuMsPerS === null ? '' : `idle CPU ${r.idleCpuMsPerS} ms/s, `) +
              `CloudWatch puts ${r.cloudwatchPuts} (${r.cloudwatchDatums} datums), load ${r.loadAverage1m}`,
          );
        }
      } finally {
        for (const [, svc] of services) {
          await svc.stop();
        }
      }
    }
    cwTotal = await cw.counts();
  } finally {
    await cw.close();
  }
  const off = summarizeSide(rounds.filter((r) => r.side === 'off'));
  const on = summarizeSide(rounds.filter((r) => r.side === 'on'));
  // paired: each round's own difference (both sides measured in the same seconds)
  const pairs = opts.paired
    ? [...new Set(rounds.map((r) => r.round))].map((n) => {
        const a = rounds.find((r) => r.round === n && r.side === 'off') as AbRound;
        const b = rounds.find((r) => r.round === n && r.side === 'on') as AbRound;
        return {
          round: n,
          rpsPct: round((100 * (b.rps - a.rps)) / a.rps, 2),
          cpuPct: round((100 * (b.cpuUsPerRequest - a.cpuUsPerRequest)) / a.cpuUsPerRequest, 2),
        };
      })
    : null;
  const differencePct = pairs
    ? round(median(pairs.map((p) => p.rpsPct)), 2)
    : round((100 * (on.medianRps - off.medianRps)) / off.medianRps, 2);
  const cpuDifferencePct = pairs
    ? round(median(pairs.map((p) => p.cpuPct)), 2)
    : round((100 * (on.cpuUsPerRequest - off.cpuUsPerRequest)) / off.cpuUsPerRequest, 2);
  const backgroundCorePct =
    on.idleCpuMsPerS === null || off.idleCpuMsPerS === null
      ? null
      : round((on.idleCpuMsPerS - off.idleCpuMsPerS) / 10, 2);
  const notes: string[] = [];
  const onRounds = rounds.filter((r) => r.side === 'on');
  if (envOn.CLOUDWATCH_ENABLED === 'true' && onRounds.some((r) => r.cloudwatchPuts === 0)) {
    notes.push(
      'an "on" round saw no PutMetricData during its measured phase: raise --duration-s or lower --ab-cloudwatch-interval-s',
    );
  }
  if (rounds.some((r) => r.errors > 0)) {
    notes.push('some requests failed (see errors per round)');
  }
  return {
    compare: name,
    workload: opts.workload,
    only: opts.only ?? 'all',
    order,
    paired: pairs,
    warmupS: opts.warmupS,
    durationS: opts.durationS,
    idleS: opts.idleS,
    cloudwatchIntervalS: opts.cloudwatchIntervalS,
    envOff,
    envOn: {
      ...envOn,
      ...(envOn.CLOUDWATCH_ENDPOINT
        ? { CLOUDWATCH_ENDPOINT: '(local endpoint)', AWS_SECRET_ACCESS_KEY: '(dummy)' }
        : {}),
    },
    rounds,
    off,
    on,
    differencePct,
    cpuDifferencePct,
    backgroundCorePct,
    targetPct,
    verdict: Math.abs(differencePct) <= targetPct ? 'PASS' : 'FAIL',
    cloudwatch: {
      puts: cwTotal.puts,
      datums: cwTotal.datums,
      wireBytes: cwTotal.wireBytes,
      otherCalls: cwTotal.others,
    },
    loadAverage: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) },
    notes,
  };
}

/** The table printed at the end of a `--monitoring-ab` run. */
export function renderMonitoringAb(ab: MonitoringAbReport): string {
  const lines = [
    ab.compare === 'monitoring'
      ? `monitoring A/B (${ab.workload}; on = ${ab.only === 'all' ? 'everything' : `${ab.only} only`}): warm-up ${ab.warmupS}s, measured ${ab.durationS}s per round, CloudWatch interval ${ab.cloudwatchIntervalS}s`
      : `${ab.compare} A/B (${ab.workload}): warm-up ${ab.warmupS}s, measured ${ab.durationS}s per round`,
    '| round | side | req/s | service CPU µs/req | idle CPU ms/s | p50 ms | p95 ms | errors | CW puts | load 1m |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ab.rounds.map(
      (r) =>
        `| ${r.round} | ${r.side} | ${r.rps} | ${r.cpuUsPerRequest} | ${r.idleCpuMsPerS ?? '-'} | ${r.latencyMs.p50} | ${r.latencyMs.p95} | ${r.errors} | ${r.cloudwatchPuts} | ${r.loadAverage1m} |`,
    ),
    '',
    '| side | rounds | median req/s | min | max | service CPU µs/req (median) | idle CPU ms/s (median) | p50 ms (median) | p95 ms (median) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...(['off', 'on'] as const).map((s) => {
      const x = ab[s];
      return `| ${s} | ${x.rounds} | ${x.medianRps} | ${x.minRps} | ${x.maxRps} | ${x.cpuUsPerRequest} | ${x.idleCpuMsPerS ?? '-'} | ${x.p50Ms} | ${x.p95Ms} |`;
    }),
    '',
    ...(ab.paired
      ? [
          `paired rounds, (on − off) / off of req/s: ${ab.paired.map((p) => `${p.rpsPct} %`).join(', ')}; of CPU per request: ${ab.paired.map((p) => `${p.cpuPct} %`).join(', ')}`,
        ]
      : []),
    `difference (on − off) / off${ab.paired ? ', median of the paired rounds' : ''}: ${ab.differencePct} % — target |Δ| ≤ ${ab.targetPct} %: ${ab.verdict}`,
    `service CPU per request (on − off) / off: ${ab.cpuDifferencePct} %`,
    ...(ab.backgroundCorePct === null
      ? []
      : [
          `background work (idle CPU on − off): ${ab.backgroundCorePct} % of one core (the throughput a saturated event loop loses to it)`,
        ]),
    `CloudWatch endpoint: ${ab.cloudwatch.puts} PutMetricData, ${ab.cloudwatch.datums} datums; load average ${ab.loadAverage.start.join(' ')} → ${ab.loadAverage.end.join(' ')}`,
    ...ab.notes.map((n) => `note: ${n}`),
  ];
  return lines.join('\n');
}
