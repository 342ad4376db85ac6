/**
 * Where a request's CPU goes, by stage (issue 14, target 3): a V8 CPU profile of the
 * service (`node --cpu-prof`) taken under the bench's load, its samples in the measured
 * window attributed by the frame they were taken in (self time) to a stage by the
 * frame's script and function. Self time only: a stage's share is the time spent in its
 * own code, not in what it calls (JSON.stringify called by the serializer counts under
 * "native and V8" unless V8 attributes it to the caller). A profile's figures compare with
 * another profile's (before/after), not with an unprofiled run's CPU per request.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { round } from './stats.js';

interface CallFrame {
  functionName: string;
  url: string;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Stages in the order they are reported; the first matching rule wins. */
export const STAGES = [
  'auth',
  'rate limit',
  'request context',
  'cache',
  'logging',
  'metrics',
  'validation and serialisation',
  'NestJS',
  'Fastify',
  'Node HTTP and sockets',
  'service code (other)',
  'other dependencies',
  'garbage collection',
  'native and V8',
  'idle',
] as const;
export type Stage = (typeof STAGES)[number];

const RULES: Array<[Stage, (url: string, fn: string) => boolean]> = [
  ['idle', (u, f) => !u && f === '(idle)'],
  ['garbage collection', (u, f) => !u && f === '(garbage collector)'],
  ['auth', (u) => /\/src\/security\/api-key|node:internal\/crypto/.test(u)],
  ['rate limit', (u) => /rate-limiter-flexible|\/src\/security\/(api-)?rate-limit/.test(u)],
  [
    'request context',
    (u) => /node:async_hooks|node:internal\/async_hooks|\/src\/common\/request-context/.test(u),
  ],
  ['cache', (u) => /\/src\/cache\/|node_modules\/(keyv|@keyv|lru-cache|cache-manager)\//.test(u)],
  ['logging', (u) => /node_modules\/(pino|sonic-boom|fast-redact)|\/src\/common\/logger/.test(u)],
  ['metrics', (u) => /node_modules\/(prom-client|tdigest|bintrees)\/|\/src\/monitoring\//.test(u)],
  [
    'validation and serialisation',
    (u, f) =>
      /node_modules\/(class-validator|class-transformer|fast-json-stringify)\//.test(u) ||
      (/node_modules\/fastify\/lib\/reply/.test(u) && /serialize/i.test(f)),
  ],
  ['NestJS', (u) => /node_modules\/(@nestjs|rxjs|reflect-metadata)\//.test(u)],
  [
    'Fastify',
    (u) => /node_modules\/(fastify|@fastify|find-my-way|avvio|light-my-request)\//.test(u),
  ],
  [
    'Node HTTP and sockets',
    (u, f) =>
      /^node:(_http|http|net|internal\/(streams|stream_base_commons|http|net|timers)|events|timers|stream)/.test(
        u,
      ) ||
      (!u && /^(writev|writeUtf8String|writeBuffer|writeLatin1String)$/.test(f)),
  ],
  ['service code (other)', (u) => /\/dist\/src\//.test(u)],
  ['other dependencies', (u) => /node_modules\//.test(u)],
];

export function stageOf(url: string, functionName: string): Stage {
  for (const [stage, match] of RULES) {
    if (match(url, functionName)) {
      return stage;
    }
  }
  return 'native and V8';
}

export interface StageBudget {
  /** seconds of profile attributed (the window) */
  windowS: number;
  /** share of the busy (non-idle) samples per stage, in % */
  busyPct: Record<Stage, number>;
  /**
   * µs of (profiled) CPU per request per stage: the stage's samples in the window over
   * the requests completed in it. The profiler itself adds some cost to every stage.
   */
  usPerRequest: Record<Stage, number>;
  /** all busy stages together: the profiled run's CPU per request */
  busyUsPerRequest: number;
  /** the heaviest functions by self time, for reading the profile without a viewer */
  top: Array<{ stage: Stage; fn: string; pct: number }>;
}

/**
 * Attributes the samples of the newest profile in `dir` taken in [end − skipEndS −
 * windowS, end − skipEndS] (the measured phase, which ends right before the service
 * is stopped). `requests`: how many the service completed in that window.
 */
export async function stageBudget(
  dir: string,
  windowS: number,
  skipEndS: number,
  requests: number,
): Promise<StageBudget> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (files.length === 0) {
    throw new Error(`no .cpuprofile in ${dir}: did the service exit cleanly?`);
  }
  const profile = JSON.parse(
    await readFile(path.join(dir, files[files.length - 1]), 'utf8'),
  ) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const times: number[] = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) {
    t += d;
    times.push(t);
  }
  const to = profile.endTime - skipEndS * 1e6;
  const from = to - windowS * 1e6;
  const perStage = new Map<Stage, number>();
  const perFn = new Map<string, { stage: Stage; us: number }>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (times[i] < from || times[i] > to) {
      continue;
    }
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const frame = byId.get(profile.samples[i])?.callFrame ?? { functionName: '?', url: '' };
    const stage = stageOf(frame.url, frame.functionName);
    perStage.set(stage, (perStage.get(stage) ?? 0) + dt);
    if (stage !== 'idle') {
      busy += dt;
      const name = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}`;
      const f = perFn.get(name) ?? { stage, us: 0 };
      f.us += dt;
      perFn.set(name, f);
    }
  }
  const busyPct = Object.fromEntries(
    STAGES.map((s) => [
      s,
      s === 'idle' ? 0 : round((100 * (perStage.get(s) ?? 0)) / Math.max(1, busy), 1),
    ]),
  ) as Record<Stage, number>;
  return {
    windowS,
    busyPct,
    usPerRequest: Object.fromEntries(
      STAGES.map((st) => [
        st,
        st === 'idle' ? 0 : round((perStage.get(st) ?? 0) / Math.max(1, requests), 1),
      ]),
    ) as Record<Stage, number>,
    busyUsPerRequest: round(busy / Math.max(1, requests), 1),
    top: [...perFn.entries()]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, 15)
      .map(([fn, f]) => ({ stage: f.stage, fn, pct: round((100 * f.us) / Math.max(1, busy), 1) })),
  };
}
