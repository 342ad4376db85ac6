import { stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CACHE_BENCH_DB,
  cacheDbConfig,
  otherBenchmarkRunning,
  stack,
  RedisEnv,
  withRedis,
} from './cache-data.js';
import {
  histogramDelta,
  histogramQuantile,
  metricSum,
  parseMetrics,
  type Sample,
} from './cache-workload.js';
import { log } from './progress.js';
import type { HttpClient } from './service.js';
import { withClient, type StackEnv } from './stack.js';
import { round, summarize, type LatencySummary } from './stats.js';

const LAG_METRIC = 'cache_write_behind_flush_lag_seconds';
const DEPTH_METRIC = 'cache_write_behind_queue_depth';
/** The service's write-behind stream of this database (src/recipes/recipe-write-behind.service.ts). */
const STREAM_KEY = `dbu:${CACHE_BENCH_DB}:v1:wb:recipes`;
/** INVALIDATION_CHANNEL of src/cache/cache.types.ts */
const INVALIDATION_CHANNEL = 'dbu:cache:invalidate';

export interface ServiceHandle {
  http: HttpClient;
  auth: Record<string, string>;
  redis: RedisEnv;
  repoDir: string;
  env: StackEnv;
  /** the last lines the service logged */
  output: () => string;
}

export interface FlushLag {
  observed: number;
  p50S: number | null;
  p99S: number | null;
  meanS: number | null;
}

export interface RestartCheck {
  /** seconds from the restart until /health/ready saw Redis up and the invalidation subscription was back */
  reconnectS: number | null;
  /** keys of this database Redis held right after the restart (restored from its RDB snapshot) */
  keysAfterRestart: number;
  streamGroupAfterRestart: boolean;
  /** the RDB file Redis restored: its age at the kill (file mtime; null if unreadable) */
  snapshot: { file: string; ageS: number | null } | null;
  reads: number;
  /** GET answered what PostgreSQL holds (title and version) */
  matchDatabase: number;
  /** GET answered an older version than PostgreSQL holds: an entry restored from the snapshot */
  olderThanDatabase: number;
  /** GET answered an acknowledged title that never reached PostgreSQL */
  servedLostTitle: number;
  other: number;
  errors: number;
  /** PATCHes sent after the restart, and how many of them PostgreSQL has after the settle time */
  probe: { updates: number; acknowledged: number; persisted: number; settleS: number };
  /** the service's last write-behind log lines after the probe */
  serviceLog: string[];
}

export interface DurabilityRun {
  kind: 'control' | 'redis-kill';
  updates: number;
  rateHz: number;
  sendSeconds: number;
  acknowledged: number;
  failures: Record<string, number>;
  ackLatencyMs: LatencySummary;
  /** stream entries not yet persisted+deleted when sending ended (kill: the moment before SIGKILL) */
  streamLengthAtEnd: number | null;
  queueDepthGauge: number | null;
  flushLag: FlushLag;
  settleS: number;
  persisted: number;
  lost: number;
  /** persisted updates are exactly the first ones sent (the flusher works in stream order) */
  persistedArePrefix: boolean;
  /** control: seconds from the last acknowledgement until PostgreSQL had all of them */
  allPersistedAfterS?: number | null;
  /** kill: SIGKILL time minus the acknowledgement time of the newest persisted update */
  lossWindowMs?: number | null;
  /** kill: lost / rate, the same window estimated from the count */
  lossWindowFromCountMs?: number;
  redisDownS?: number;
  afterRestart?: RestartCheck;
  skipped?: string;
}

interface SendResult {
  ackAt: Array<number | null>;
  latencies: number[];
  failures: Record<string, number>;
  seconds: number;
}

/** `n` requests at a fixed rate (open loop: a slow answer does not delay the next send). */
async function sendAtRate(
  n: number,
  rateHz: number,
  send: (i: number) => Promise<number>,
): Promise<SendResult> {
  const ackAt = new Array<number | null>(n).fill(null);
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const inFlight: Array<Promise<void>> = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = t0 + (i * 1000) / rateHz - performance.now();
    if (wait > 0) {
      await sleep(wait);
    }
    const s = performance.now();
    inFlight.push(
      send(i).then(
        (status) => {
          latencies.push(performance.now() - s);
          if (status === 200) {
            ackAt[i] = Date.now();
          } else {
            failures[String(status)] = (failures[String(status)] ?? 0) + 1;
          }
        },
        (err: unknown) => {
          const key = `error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 80);
          failures[key] = (failures[key] ?? 0) + 1;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return { ackAt, latencies, failures, seconds: (performance.now() - t0) / 1000 };
}

async function scrape(h: ServiceHandle): Promise<Sample[]> {
  const res = await h.http.request('GET', '/metrics');
  if (res.status !== 200) {
    throw new Error(`GET /metrics answered ${res.status}`);
  }
  return parseMetrics(res.body);
}

function lagOf(before: Sample[], after: Sample[]): FlushLag {
  const d = histogramDelta(before, after, LAG_METRIC);
  const q = (x: number): number | null => {
    const v = histogramQuantile(d, x);
    return v === null ? null : round(v, 3);
  };
  return {
    observed: d.count,
    p50S: q(0.5),
    p99S: q(0.99),
    meanS: d.count > 0 ? round(d.sumSeconds / d.count, 3) : null,
  };
}

/** Titles of `prefix<i>` rows on the primary, as the set of i. */
async function persistedIndexes(env: StackEnv, prefix: string): Promise<Set<number>> {
  return withClient(cacheDbConfig(env, env.primary), async (c) => {
    const { rows } = await c.query<{ title: string }>(
      `SELECT title FROM recipes WHERE starts_with(title, $1)`,
      [prefix],
    );
    return new Set(rows.map((r) => Number(r.title.slice(prefix.length))));
  });
}

async function streamLength(redis: RedisEnv): Promise<number | null> {
  try {
    return await withRedis(redis, (r) => r.xLen(STREAM_KEY));
  } catch (err) {
    log(`XLEN ${STREAM_KEY} failed: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
}

function patch(h: ServiceHandle, id: string, title: string): Promise<number> {
  return h.http
    .request('PATCH', `/v1/recipes/${id}`, Buffer.from(JSON.stringify({ title })), h.auth)
    .then((r) => r.status);
}

function acknowledged(sent: SendResult): number[] {
  return sent.ackAt.flatMap((t, i) => (t === null ? [] : [i]));
}

function isPrefix(persisted: Set<number>, acked: number[]): boolean {
  const ok = acked.filter((i) => persisted.has(i));
  return ok.every((i, k) => i === acked[k]);
}

/**
 * Control: `ids.length` PATCHes at `rateHz`, then waits until every acknowledged title
 * is in PostgreSQL (or `settleS` passed). Nothing may be lost.
 */
export async function controlRun(
  h: ServiceHandle,
  ids: readonly string[],
  rateHz: number,
  settleS: number,
  tag: string,
): Promise<DurabilityRun> {
  const prefix = `wb-${tag}-c-`;
  const m0 = await scrape(h);
  log(`write-behind control: ${ids.length} PATCHes at ${rateHz}/s`);
  const sent = await sendAtRate(ids.length, rateHz, (i) => patch(h, ids[i], `${prefix}${i}`));
  const xlen = await streamLength(h.redis);
  const acked = acknowledged(sent);
  const lastAck = Math.max(...acked.map((i) => sent.ackAt[i] ?? 0));
  let persisted = new Set<number>();
  let allPersistedAfterS: number | null = null;
  const deadline = Date.now() + settleS * 1000;
  for (;;) {
    persisted = await persistedIndexes(h.env, prefix);
    if (acked.every((i) => persisted.has(i))) {
      allPersistedAfterS = round((Date.now() - lastAck) / 1000, 2);
      break;
    }
    if (Date.now() > deadline) {
      break;
    }
    await sleep(100);
  }
  // the histogram is observed after the commit: let the flush round finish
  await sleep(200);
  const m1 = await scrape(h);
  const persistedAcked = acked.filter((i) => persisted.has(i)).length;
  return {
    kind: 'control',
    updates: ids.length,
    rateHz,
    sendSeconds: round(sent.seconds, 2),
    acknowledged: acked.length,
    failures: sent.failures,
    ackLatencyMs: summarize(sent.latencies),
    streamLengthAtEnd: xlen,
    queueDepthGauge: metricSum(m1, DEPTH_METRIC),
    flushLag: lagOf(m0, m1),
    settleS,
    persisted: persistedAcked,
    lost: acked.length - persistedAcked,
    persistedArePrefix: isPrefix(persisted, acked),
    allPersistedAfterS,
  };
}

/**
 * The same PATCHes, then SIGKILL of Redis right after the last acknowledgement
 * (`appendonly no`: the stream dies with the process). After `settleS`, counts what
 * PostgreSQL has; restarts Redis (always), then checks what the service answers for
 * those recipes and whether write-behind works again.
 */
export async function killRun(
  h: ServiceHandle,
  ids: readonly string[],
  probeIds: readonly string[],
  rateHz: number,
  settleS: number,
  tag: string,
): Promise<DurabilityRun> {
  const prefix = `wb-${tag}-k-`;
  const other = await otherBenchmarkRunning();
  if (other) {
    log(`another benchmark runs (${other}): Redis is not killed`);
    return {
      kind: 'redis-kill',
      updates: 0,
      rateHz,
      sendSeconds: 0,
      acknowledged: 0,
      failures: {},
      ackLatencyMs: summarize([]),
      streamLengthAtEnd: null,
      queueDepthGauge: null,
      flushLag: { observed: 0, p50S: null, p99S: null, meanS: null },
      settleS,
      persisted: 0,
      lost: 0,
      persistedArePrefix: true,
      skipped: `another benchmark was running: ${other}`,
    };
  }
  const m0 = await scrape(h);
  log(`write-behind kill run: ${ids.length} PATCHes at ${rateHz}/s, then SIGKILL redis`);
  const sent = await sendAtRate(ids.length, rateHz, (i) => patch(h, ids[i], `${prefix}${i}`));
  const m1 = await scrape(h);
  const xlen = await streamLength(h.redis);
  const subscribers = await channelSubscribers(h.redis);
  const snapshot = await lastSnapshot(h.redis);
  const killAt = Date.now();
  let restartedAt: number;
  let persisted: Set<number>;
  try {
    log(await stack(h.repoDir, 'kill', 'redis'));
    await sleep(settleS * 1000);
    persisted = await persistedIndexes(h.env, prefix);
  } finally {
    log(await stack(h.repoDir, 'start', 'redis'));
    restartedAt = Date.now();
  }
  const acked = acknowledged(sent);
  const persistedAcked = acked.filter((i) => persisted.has(i));
  const newestPersistedAck = Math.max(0, ...persistedAcked.map((i) => sent.ackAt[i] ?? 0));
  const lost = acked.length - persistedAcked.length;
  const afterRestart = await checkAfterRestart(h, ids, sent, prefix, probeIds, settleS, tag, {
    restartedAt,
    subscribers,
    snapshot: snapshot && {
      file: snapshot.file,
      ageS: snapshot.mtimeMs === null ? null : Math.round((killAt - snapshot.mtimeMs) / 1000),
    },
  });
  return {
    kind: 'redis-kill',
    updates: ids.length,
    rateHz,
    sendSeconds: round(sent.seconds, 2),
    acknowledged: acked.length,
    failures: sent.failures,
    ackLatencyMs: summarize(sent.latencies),
    streamLengthAtEnd: xlen,
    queueDepthGauge: metricSum(m1, DEPTH_METRIC),
    flushLag: lagOf(m0, m1),
    settleS,
    persisted: persistedAcked.length,
    lost,
    persistedArePrefix: isPrefix(persisted, acked),
    lossWindowMs: newestPersistedAck > 0 ? killAt - newestPersistedAck : null,
    lossWindowFromCountMs: Math.round((lost / rateHz) * 1000),
    redisDownS: round((restartedAt - killAt) / 1000, 1),
    afterRestart,
  };
}

async function checkAfterRestart(
  h: ServiceHandle,
  ids: readonly string[],
  sent: SendResult,
  prefix: string,
  probeIds: readonly string[],
  settleS: number,
  tag: string,
  before: {
    restartedAt: number;
    subscribers: number;
    snapshot: RestartCheck['snapshot'];
  },
): Promise<RestartCheck> {
  const restored = await withRedis(h.redis, async (r) => {
    let keys = 0;
    for await (const batch of r.scanIterator({ MATCH: `dbu:${CACHE_BENCH_DB}:*`, COUNT: 1000 })) {
      keys += batch.length;
    }
    const group = (await r.exists(STREAM_KEY)) === 1;
    return { keys, group: group && (await r.xInfoGroups(STREAM_KEY)).length > 0 };
  });
  const reconnectS = await waitReconnected(h, before.subscribers, before.restartedAt);
  const truth = await withClient(cacheDbConfig(h.env, h.env.primary), async (c) => {
    const { rows } = await c.query<{ id: string; title: string; version: number }>(
      `SELECT id::text AS id, title, version FROM recipes WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((r) => [r.id, r]));
  });
  const seen = { matchDatabase: 0, olderThanDatabase: 0, servedLostTitle: 0, other: 0, errors: 0 };
  for (let i = 0; i < ids.length; i++) {
    const res = await h.http.request('GET', `/v1/recipes/${ids[i]}`, undefined, h.auth);
    const db = truth.get(ids[i]);
    if (res.status !== 200 || !db) {
      seen.errors++;
      continue;
    }
    const got = JSON.parse(res.body) as { title: string; version: number };
    if (got.title === db.title && got.version === db.version) {
      seen.matchDatabase++;
    } else if (got.version < db.version) {
      seen.olderThanDatabase++;
    } else if (got.title === `${prefix}${i}` && sent.ackAt[i] !== null) {
      seen.servedLostTitle++;
    } else {
      seen.other++;
    }
  }
  const probePrefix = `wb-${tag}-p-`;
  log(`after the restart: ${probeIds.length} PATCHes, then ${settleS}s for the flusher`);
  const probe = await sendAtRate(probeIds.length, 20, (i) =>
    patch(h, probeIds[i], `${probePrefix}${i}`),
  );
  await sleep(settleS * 1000);
  const probePersisted = await persistedIndexes(h.env, probePrefix);
  const serviceLog = h
    .output()
    .split('\n')
    .filter((l) => /write-behind|NOGROUP/i.test(l))
    .slice(-5)
    .map((l) => l.slice(0, 400));
  return {
    reconnectS,
    keysAfterRestart: restored.keys,
    streamGroupAfterRestart: restored.group,
    snapshot: before.snapshot,
    reads: ids.length,
    ...seen,
    probe: {
      updates: probeIds.length,
      acknowledged: acknowledged(probe).length,
      persisted: acknowledged(probe).filter((i) => probePersisted.has(i)).length,
      settleS,
    },
    serviceLog,
  };
}

async function channelSubscribers(redis: RedisEnv): Promise<number> {
  return withRedis(redis, async (r) => {
    const counts = await r.pubSubNumSub(INVALIDATION_CHANNEL);
    return Number(counts[INVALIDATION_CHANNEL] ?? 0);
  });
}

interface Readiness {
  details?: Record<string, { status?: string }>;
}

/**
 * The service's Redis clients reconnect with a backoff of up to 5 s: waits until
 * /health/ready reports Redis up and the invalidation channel has its subscribers
 * of before the kill again (that reconnect is what flushes the service's L1).
 */
async function waitReconnected(
  h: ServiceHandle,
  subscribers: number,
  restartedAt: number,
  timeoutMs = 30_000,
): Promise<number | null> {
  while (Date.now() - restartedAt < timeoutMs) {
    const res = await h.http.request('GET', '/health/ready');
    const redisUp =
      res.status === 200 && (JSON.parse(res.body) as Readiness).details?.redis?.status === 'up';
    if (redisUp && (await channelSubscribers(h.redis)) >= subscribers) {
      return round((Date.now() - restartedAt) / 1000, 1);
    }
    await sleep(250);
  }
  log(`the service did not reconnect to Redis within ${timeoutMs} ms of the restart`);
  return null;
}

/** The RDB file a restart restores (the stack's Redis runs on this machine). */
async function lastSnapshot(
  redis: RedisEnv,
): Promise<{ file: string; mtimeMs: number | null } | null> {
  const file = await withRedis(redis, async (r) => {
    const dir = (await r.configGet('dir')).dir;
    const name = (await r.configGet('dbfilename')).dbfilename;
    return dir && name ? path.join(dir, name) : null;
  });
  if (file === null) {
    return null;
  }
  try {
    return { file, mtimeMs: (await stat(file)).mtimeMs };
  } catch (err) {
    log(`no RDB snapshot readable at ${file}: ${err instanceof Error ? err.message : String(err)}`);
    return { file, mtimeMs: null };
  }
}
