import { BackupValidationMetric } from '../backup/backup-validation.metrics.js';
import { BackupMetric } from '../backup/backup.metrics.js';
import { CacheMetric } from '../cache/cache.metrics.js';
import { DatabaseMetric } from '../database/database.metrics.js';
import { MetricName } from '../monitoring/metrics.service.js';
import { SamplerMetric } from '../monitoring/sampler.metrics.js';
import { VectorMetric } from '../recipes/search.metrics.js';

type Labels = Record<string, string | number>;

interface SampleValue {
  value: number;
  labels: Labels;
  /** Histograms: `<name>_bucket`, `<name>_sum` or `<name>_count`. */
  metricName?: string;
}

/**
 * What `Registry.getMetricsAsJSON()` returns at run time: one entry per metric, `type` as
 * prom-client's string ('counter', 'gauge', 'histogram', 'summary').
 */
export type RegistrySnapshot = Array<{ name: string; type: string; values: SampleValue[] }>;

/** The charts of the page, in order; each point holds one value per line (null: no data). */
export enum Chart {
  Requests = 'requests',
  RequestLatency = 'request_latency',
  SearchLatency = 'search_latency',
  SearchRecall = 'search_recall',
  CacheHitRate = 'cache_hit_rate',
  PoolUtilisation = 'pool_utilisation',
  ReplicationLag = 'replication_lag',
}

export const CHARTS: Array<{ id: Chart; title: string; unit: string }> = [
  { id: Chart.Requests, title: 'Requests', unit: 'req/s' },
  { id: Chart.RequestLatency, title: 'Request latency', unit: 'ms' },
  { id: Chart.SearchLatency, title: 'Vector search latency', unit: 'ms' },
  { id: Chart.SearchRecall, title: 'Search recall (sampled)', unit: 'recall' },
  { id: Chart.CacheHitRate, title: 'Cache hit rate', unit: 'ratio' },
  { id: Chart.PoolUtilisation, title: 'Pool utilisation', unit: 'ratio' },
  { id: Chart.ReplicationLag, title: 'Replication lag', unit: 's' },
];

/** One sample of every chart: line name → value. */
export type Point = Record<Chart, Record<string, number | null>>;

export interface ActiveAlert {
  alert: string;
  severity: string | null;
  labels: Record<string, string>;
}

export interface BackupStatus {
  lastGoodAgeSeconds: number | null;
  lastValidationAt: string | null;
  completion: Array<{ kind: string; succeeded: boolean }>;
}

/**
 * A copy of `getMetricsAsJSON()`'s answer: prom-client hands out its live value objects
 * (a counter's entry is the object `inc()` updates), so a kept snapshot would change.
 */
export function copySnapshot(metrics: unknown): RegistrySnapshot {
  return (metrics as RegistrySnapshot).map((m) => ({
    name: m.name,
    type: String(m.type),
    values: m.values.map((v) => ({
      value: v.value,
      labels: { ...v.labels },
      ...(v.metricName ? { metricName: v.metricName } : {}),
    })),
  }));
}

function metric(snapshot: RegistrySnapshot, name: string): SampleValue[] {
  return snapshot.find((m) => m.name === name)?.values ?? [];
}

function labelKey(labels: Labels, omit: string[] = []): string {
  return Object.keys(labels)
    .filter((k) => !omit.includes(k))
    .sort()
    .map((k) => `${k}=${String(labels[k])}`)
    .join(',');
}

/** Sum of the values of `name` (histograms: a `_count`, `_sum` or `_bucket` series) matching `where`. */
function sum(
  snapshot: RegistrySnapshot,
  name: string,
  where: (l: Labels) => boolean = () => true,
  series?: string,
): number {
  return metric(snapshot, name)
    .filter((v) => (series ? v.metricName === series : true) && where(v.labels))
    .reduce((s, v) => s + v.value, 0);
}

/** Cumulative bucket counts by upper bound (summed over every label set) of a histogram. */
function buckets(snapshot: RegistrySnapshot, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const v of metric(snapshot, name)) {
    if (v.metricName !== `${name}_bucket`) {
      continue;
    }
    const le = v.labels.le;
    const bound = le === '+Inf' ? Infinity : Number(le);
    out.set(bound, (out.get(bound) ?? 0) + v.value);
  }
  return out;
}

/**
 * Prometheus' histogram_quantile over the bucket increase between two snapshots (linear
 * interpolation inside the bucket); null when nothing was observed in between.
 */
export function quantileOfIncrease(
  prev: RegistrySnapshot,
  cur: RegistrySnapshot,
  name: string,
  q: number,
): number | null {
  const before = buckets(prev, name);
  const after = [...buckets(cur, name).entries()].sort((a, b) => a[0] - b[0]);
  const inc = after.map(([le, c]) => [le, Math.max(0, c - (before.get(le) ?? 0))] as const);
  const total = inc.length > 0 ? inc[inc.length - 1][1] : 0;
  if (total <= 0) {
    return null;
  }
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, count] of inc) {
    if (count >= rank) {
      if (le === Infinity) {
        return lower; // beyond the last finite bucket: its bound is the best estimate
      }
      const inBucket = count - below;
      return inBucket > 0 ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le === Infinity ? lower : le;
    below = count;
  }
  return lower;
}

/** A counter's increase; one that went down was reset (a restart): count from zero. */
function increase(prev: number, cur: number): number {
  return cur >= prev ? cur - prev : cur;
}

function rate(prev: number, cur: number, seconds: number): number {
  return increase(prev, cur) / seconds;
}

function ratio(hits: number, misses: number): number | null {
  return hits + misses > 0 ? hits / (hits + misses) : null;
}

const ms = (seconds: number | null): number | null =>
  seconds === null ? null : Math.round(seconds * 100_000) / 100;

/**
 * One point of every chart from two registry snapshots `seconds` apart, and the busy share
 * of each connection pool now (`pools`, label → 0..1: the process's own pools are read
 * directly, the gauges are only set while pool control runs). Pure.
 */
export function point(
  prev: RegistrySnapshot,
  cur: RegistrySnapshot,
  seconds: number,
  pools: Record<string, number> = {},
): Point {
  const http = `${MetricName.HttpRequestDuration}_count`;
  const is5xx = (l: Labels): boolean => String(l.status).startsWith('5');
  const requests = {
    all: rate(
      sum(prev, MetricName.HttpRequestDuration, () => true, http),
      sum(cur, MetricName.HttpRequestDuration, () => true, http),
      seconds,
    ),
    '5xx': rate(
      sum(prev, MetricName.HttpRequestDuration, is5xx, http),
      sum(cur, MetricName.HttpRequestDuration, is5xx, http),
      seconds,
    ),
  };
  const latency = (name: string): Record<string, number | null> => ({
    p50: ms(quantileOfIncrease(prev, cur, name, 0.5)),
    p95: ms(quantileOfIncrease(prev, cur, name, 0.95)),
  });
  const recallSum = (s: RegistrySnapshot): number =>
    sum(s, VectorMetric.Recall, () => true, `${VectorMetric.Recall}_sum`);
  const recallCount = (s: RegistrySnapshot): number =>
    sum(s, VectorMetric.Recall, () => true, `${VectorMetric.Recall}_count`);
  const recalled = increase(recallCount(prev), recallCount(cur));
  const recallTotal =
    recallCount(cur) >= recallCount(prev) ? recallSum(cur) - recallSum(prev) : recallSum(cur);
  const cache: Record<string, number | null> = {};
  const tiers = new Set(
    [...metric(cur, CacheMetric.Hits), ...metric(cur, CacheMetric.Misses)].map((v) =>
      String(v.labels.tier),
    ),
  );
  for (const tier of [...tiers].sort()) {
    const of = (l: Labels): boolean => String(l.tier) === tier;
    cache[tier] = ratio(
      increase(sum(prev, CacheMetric.Hits, of), sum(cur, CacheMetric.Hits, of)),
      increase(sum(prev, CacheMetric.Misses, of), sum(cur, CacheMetric.Misses, of)),
    );
  }
  return {
    [Chart.Requests]: requests,
    [Chart.RequestLatency]: latency(MetricName.HttpRequestDuration),
    [Chart.SearchLatency]: latency(VectorMetric.SearchDuration),
    [Chart.SearchRecall]: {
      mean: recalled > 0 ? recallTotal / recalled : null,
    },
    [Chart.CacheHitRate]: cache,
    // dbu_pool_utilization is set by pool control and the sampler's PgBouncer read
    [Chart.PoolUtilisation]: {
      ...gauges(cur, DatabaseMetric.PoolUtilization, (l) => String(l.pool)),
      ...pools,
    },
    [Chart.ReplicationLag]: gauges(
      cur,
      SamplerMetric.ReplicationLagSeconds,
      (l) => labelKey(l, ['service']) || 'value',
    ),
  };
}

/** A gauge's values, keyed by `key` of each label set. */
function gauges(
  snapshot: RegistrySnapshot,
  name: string,
  key: (labels: Labels) => string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of metric(snapshot, name)) {
    out[key(v.labels)] = v.value;
  }
  return out;
}

/**
 * Alerts raised now: every alert-state gauge (`*_alert`, `dbu_alerts_firing`) at 1, with its
 * `alert` and `severity` labels.
 */
export function activeAlerts(snapshot: RegistrySnapshot): ActiveAlert[] {
  const out: ActiveAlert[] = [];
  for (const m of snapshot) {
    if (!/_alert$|^dbu_alerts_firing$/.test(m.name) || m.type !== 'gauge') {
      continue;
    }
    for (const v of m.values) {
      if (v.value > 0) {
        const labels = Object.fromEntries(
          Object.entries(v.labels)
            .filter(([k]) => !['service', 'alert', 'severity'].includes(k))
            .map(([k, x]) => [k, String(x)]),
        );
        const l = v.labels;
        out.push({
          alert: String(l.alert ?? m.name),
          severity: l.severity === undefined ? null : String(l.severity),
          labels,
        });
      }
    }
  }
  // The alerting rules re-raise some gauges' alerts under the same name (backup_failed from
  // dbu_backup_alert and dbu_alerts_firing): listed once.
  const seen = new Set<string>();
  return out
    .sort((a, b) => a.alert.localeCompare(b.alert))
    .filter((a) => {
      const key = `${a.alert}|${a.severity ?? ''}|${JSON.stringify(a.labels)}`;
      if (seen.has(key)) {
        return false;
      }
      seen.add(key);
      return true;
    });
}

export function backupStatus(snapshot: RegistrySnapshot): BackupStatus {
  const one = (name: string): number | null => metric(snapshot, name)[0]?.value ?? null;
  const validated = one(BackupValidationMetric.LastGoodValidation);
  const age = one(BackupMetric.LastGoodAge);
  return {
    // -1 while no backup has succeeded
    lastGoodAgeSeconds: age !== null && age >= 0 ? age : null,
    lastValidationAt: validated ? new Date(validated * 1000).toISOString() : null,
    completion: metric(snapshot, BackupMetric.CompletionStatus).map((v) => ({
      kind: String(v.labels.kind),
      succeeded: v.value === 1,
    })),
  };
}
