import type { Registry } from 'prom-client';
import type { AlertRule } from '../config/alerting.config.js';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** What a windowed aggregation remembers of the previous evaluation. */
export interface Baseline {
  at: number;
  /** increase/rate: the sum of the series; p95: cumulative count per bucket bound. */
  total?: number;
  buckets?: Map<number, number>;
}

function matches(labels: Sample['labels'], filter: AlertRule['labels']): boolean {
  return Object.entries(filter).every(([k, want]) => {
    const have = labels[k];
    if (have === undefined) {
      return false;
    }
    return Array.isArray(want) ? want.includes(String(have)) : String(have) === want;
  });
}

/**
 * Reads a rule's value from the registry (running the metrics' collect callbacks, as a
 * scrape would). Returns null when no series matches or a windowed aggregation has no
 * baseline yet; `baselines` carries the windowed state between calls.
 */
export async function readRuleValue(
  registry: Registry,
  rule: AlertRule,
  baselines: Map<string, Baseline>,
  now: number,
): Promise<number | null> {
  const metric = registry.getSingleMetric(rule.metric);
  if (!metric) {
    return null;
  }
  const all = (await metric.get()).values as Sample[];
  const series = all.filter((s) => matches(s.labels, rule.labels));
  switch (rule.aggregation) {
    case 'max':
    case 'min':
    case 'sum':
    case 'avg':
      return aggregate(
        rule.aggregation,
        series.map((s) => s.value),
      );
    case 'increase':
    case 'rate':
      return windowed(rule, series, baselines, now);
    case 'p95':
      return quantile(rule, series, baselines, now, 0.95);
  }
}

function aggregate(kind: 'max' | 'min' | 'sum' | 'avg', values: number[]): number | null {
  if (values.length === 0) {
    return null;
  }
  switch (kind) {
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'avg':
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}

function windowed(
  rule: AlertRule,
  series: Sample[],
  baselines: Map<string, Baseline>,
  now: number,
): number | null {
  const total = series.reduce((a, s) => a + s.value, 0);
  const prev = baselines.get(rule.name);
  baselines.set(rule.name, { at: now, total });
  if (prev?.total === undefined) {
    return null;
  }
  // A counter that went down was reset (a restart): its whole value is the increase.
  const increase = total >= prev.total ? total - prev.total : total;
  if (rule.aggregation === 'increase') {
    return increase;
  }
  const seconds = (now - prev.at) / 1000;
  return seconds > 0 ? increase / seconds : null;
}

/** Prometheus' histogram_quantile over the bucket counts observed since the last call. */
function quantile(
  rule: AlertRule,
  series: Sample[],
  baselines: Map<string, Baseline>,
  now: number,
  q: number,
): number | null {
  const buckets = new Map<number, number>();
  for (const s of series) {
    if (s.metricName !== `${rule.metric}_bucket`) {
      continue;
    }
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  const prev = baselines.get(rule.name);
  baselines.set(rule.name, { at: now, buckets });
  if (!prev?.buckets || buckets.size === 0) {
    return null;
  }
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const delta = bounds.map((le) =>
    Math.max(0, (buckets.get(le) ?? 0) - (prev.buckets?.get(le) ?? 0)),
  );
  const count = delta[delta.length - 1];
  if (!count) {
    return null;
  }
  const rank = q * count;
  for (let i = 0; i < bounds.length; i++) {
    if (delta[i] >= rank) {
      const upper = bounds[i];
      const lower = i === 0 ? 0 : bounds[i - 1];
      if (upper === Infinity) {
        return lower;
      }
      const below = i === 0 ? 0 : delta[i - 1];
      const inBucket = delta[i] - below;
      return inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
    }
  }
  return null;
}
