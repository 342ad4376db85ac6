import type { Dimension, MetricDatum, StandardUnit } from '@aws-sdk/client-cloudwatch';

/** PutMetricData limits (API reference, PutMetricData and MetricDatum). */
export const CLOUDWATCH_LIMITS = {
  datumsPerCall: 1000,
  /** 1 MB per HTTP POST; the SDK gzips, the budget counts the uncompressed JSON. */
  bytesPerCall: 1_000_000,
  dimensionsPerDatum: 30,
  valuesPerDatum: 150,
  dimensionValueLength: 1024,
  dimensionNameLength: 255,
  metricNameLength: 255,
} as const;

/** Dimension names the publisher sets itself (before the metric's own labels). */
export enum CloudWatchDimension {
  Environment = 'environment',
  Instance = 'instance',
  Service = 'service',
}

/**
 * Fleet-wide series published next to the per-instance ones: the spec's alarms need
 * metrics whose dimensions are known before any instance starts (no instance, no labels).
 */
export const ROLLUPS: ReadonlyArray<{ source: string; name: string }> = [
  { source: 'cache_hits_total', name: 'CacheHits' },
  { source: 'cache_misses_total', name: 'CacheMisses' },
  { source: 'vector_search_duration_seconds', name: 'VectorSearchLatency' },
];

export interface ConverterOptions {
  service: string;
  environment: string;
  instance: string;
}

export interface Conversion {
  datums: MetricDatum[];
  /** Samples CloudWatch would reject (±Infinity, beyond ±2^360), by metric. NaN means no sample. */
  invalid: Array<{ metric: string; value: number }>;
  /** Labels beyond the 30-dimension limit, by metric (not sent). */
  truncatedLabels: string[];
}

type Labels = Record<string, string | number>;

/**
 * One metric of `registry.getMetricsAsJSON()` as it is at run time (prom-client's typings
 * declare `type` a numeric enum; the objects carry 'counter', 'gauge', 'histogram', 'summary').
 */
export interface RegistryMetric {
  name: string;
  type: string;
  values: Array<{ value: number; labels: Labels; metricName?: string }>;
}

/** |value| beyond 2^360 is rejected by CloudWatch. */
const MAX_ABS = 2 ** 360;

export function unitFor(name: string, type: string): StandardUnit {
  const base = name.replace(/_total$/, '');
  if (/_seconds$/.test(base)) {
    return 'Seconds';
  }
  if (/_(milliseconds|ms)$/.test(base)) {
    return 'Milliseconds';
  }
  if (/_bytes$/.test(base)) {
    return 'Bytes';
  }
  if (type === 'counter' || /_(rows|count)$/.test(base)) {
    return 'Count';
  }
  return 'None';
}

function seriesKey(name: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return `${name}{${keys.map((k) => `${k}=${String(labels[k])}`).join(',')}}`;
}

function validValue(v: number): boolean {
  return Number.isFinite(v) && Math.abs(v) < MAX_ABS;
}

/**
 * Turns prom-client's registry snapshot into MetricDatum: gauges as they are, counters as
 * the increase since the previous conversion (a reset counts from zero), histograms as
 * Values/Counts sets of the observations since the previous conversion (a bucket's upper
 * bound stands for its observations; the +Inf bucket's value is the overflow's mean
 * estimated from `_sum`, at least the largest finite bound). Stateful: one per registry.
 */
export class RegistryConverter {
  /** Last seen cumulative value per counter series / histogram bucket / sum. */
  private readonly previous = new Map<string, number>();

  constructor(private readonly options: ConverterOptions) {}

  convert(metrics: readonly RegistryMetric[], now: Date): Conversion {
    const out: Conversion = { datums: [], invalid: [], truncatedLabels: [] };
    const rollupDeltas = new Map<string, number>();
    const rollupSets = new Map<string, Map<number, number>>();
    for (const metric of metrics) {
      const rollup = ROLLUPS.find((r) => r.source === metric.name);
      const unit = unitFor(metric.name, metric.type);
      if (metric.type === 'histogram') {
        for (const series of this.histogramSeries(metric)) {
          const set = this.histogramDelta(metric.name, series);
          if (set.size === 0) {
            continue;
          }
          this.pushSet(out, metric.name, unit, series.labels, set, now);
          if (rollup) {
            const merged = rollupSets.get(rollup.name) ?? new Map<number, number>();
            for (const [v, c] of set) {
              merged.set(v, (merged.get(v) ?? 0) + c);
            }
            rollupSets.set(rollup.name, merged);
          }
        }
        continue;
      }
      for (const sample of metric.values) {
        const name = sample.metricName ?? metric.name;
        const labels = sample.labels;
        // Summaries: _sum/_count are cumulative like counters, quantiles are gauges.
        const cumulative =
          metric.type === 'counter' || name.endsWith('_sum') || name.endsWith('_count');
        let value = sample.value;
        if (cumulative) {
          const key = seriesKey(name, labels);
          const before = this.previous.get(key) ?? 0;
          this.previous.set(key, value);
          value = value >= before ? value - before : value;
        }
        if (Number.isNaN(value)) {
          continue; // prom-client's "no sample yet" (e.g. event-loop lag before its first tick)
        }
        if (!validValue(value)) {
          out.invalid.push({ metric: name, value });
          continue;
        }
        out.datums.push({
          MetricName: name,
          Dimensions: this.dimensions(name, labels, out),
          Timestamp: now,
          Unit: name === metric.name ? unit : unitFor(name, 'gauge'),
          Value: value,
        });
        if (rollup && cumulative) {
          rollupDeltas.set(rollup.name, (rollupDeltas.get(rollup.name) ?? 0) + value);
        }
      }
    }
    const fleet = this.fleetDimensions();
    for (const rollup of ROLLUPS) {
      const delta = rollupDeltas.get(rollup.name);
      if (delta !== undefined) {
        out.datums.push({
          MetricName: rollup.name,
          Dimensions: fleet,
          Timestamp: now,
          Unit: unitFor(rollup.source, 'counter'),
          Value: delta,
        });
      }
      const set = rollupSets.get(rollup.name);
      if (set) {
        for (const chunk of chunks(set)) {
          out.datums.push({
            MetricName: rollup.name,
            Dimensions: fleet,
            Timestamp: now,
            Unit: unitFor(rollup.source, 'histogram'),
            Values: chunk.map(([v]) => v),
            Counts: chunk.map(([, c]) => c),
          });
        }
      }
    }
    return out;
  }

  private histogramSeries(
    metric: RegistryMetric,
  ): Array<{ labels: Labels; buckets: Array<{ le: number; count: number }>; sum: number }> {
    const series = new Map<
      string,
      { labels: Labels; buckets: Array<{ le: number; count: number }>; sum: number }
    >();
    const entry = (labels: Labels) => {
      const key = seriesKey(metric.name, labels);
      let s = series.get(key);
      if (!s) {
        s = { labels, buckets: [], sum: 0 };
        series.set(key, s);
      }
      return s;
    };
    for (const sample of metric.values) {
      const { le, ...labels } = sample.labels;
      if (sample.metricName === `${metric.name}_bucket`) {
        entry(labels).buckets.push({
          le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le),
          count: sample.value,
        });
      } else if (sample.metricName === `${metric.name}_sum`) {
        entry(labels).sum = sample.value;
      }
    }
    return [...series.values()];
  }

  /** Observations since the previous conversion, as value → count (non-cumulative). */
  private histogramDelta(
    name: string,
    series: { labels: Labels; buckets: Array<{ le: number; count: number }>; sum: number },
  ): Map<number, number> {
    const buckets = [...series.buckets].sort((a, b) => a.le - b.le);
    const sumKey = seriesKey(`${name}_sum`, series.labels);
    const countKey = seriesKey(`${name}_count`, series.labels);
    const total = buckets.length > 0 ? buckets[buckets.length - 1].count : 0;
    const reset = total < (this.previous.get(countKey) ?? 0);
    const prevSum = reset ? 0 : (this.previous.get(sumKey) ?? 0);
    this.previous.set(sumKey, series.sum);
    this.previous.set(countKey, total);
    const set = new Map<number, number>();
    let cumulativeBefore = 0;
    let finiteSum = 0;
    let largest = 0;
    for (const bucket of buckets) {
      const key = seriesKey(`${name}_bucket`, { ...series.labels, le: bucket.le });
      const prev = reset ? 0 : (this.previous.get(key) ?? 0);
      this.previous.set(key, bucket.count);
      const inBucket = bucket.count - prev - cumulativeBefore;
      cumulativeBefore = bucket.count - prev;
      if (Number.isFinite(bucket.le)) {
        largest = bucket.le;
        if (inBucket > 0) {
          set.set(bucket.le, (set.get(bucket.le) ?? 0) + inBucket);
          finiteSum += bucket.le * inBucket;
        }
      } else if (inBucket > 0) {
        const overflowMean = (series.sum - prevSum - finiteSum) / inBucket;
        const value = Number.isFinite(overflowMean) ? Math.max(largest, overflowMean) : largest;
        set.set(value, (set.get(value) ?? 0) + inBucket);
      }
    }
    return set;
  }

  private pushSet(
    out: Conversion,
    name: string,
    unit: StandardUnit,
    labels: Labels,
    set: Map<number, number>,
    now: Date,
  ): void {
    const dimensions = this.dimensions(name, labels, out);
    for (const chunk of chunks(set)) {
      out.datums.push({
        MetricName: name,
        Dimensions: dimensions,
        Timestamp: now,
        Unit: unit,
        Values: chunk.map(([v]) => v),
        Counts: chunk.map(([, c]) => c),
      });
    }
  }

  private fleetDimensions(): Dimension[] {
    return [
      { Name: CloudWatchDimension.Service, Value: this.options.service },
      { Name: CloudWatchDimension.Environment, Value: this.options.environment },
    ];
  }

  /** environment, instance, then the metric's labels (the registry's `service` among them). */
  private dimensions(metric: string, labels: Labels, out: Conversion): Dimension[] {
    const dims: Dimension[] = [
      { Name: CloudWatchDimension.Environment, Value: this.options.environment },
      { Name: CloudWatchDimension.Instance, Value: this.options.instance },
    ];
    const own: string[] = [CloudWatchDimension.Environment, CloudWatchDimension.Instance];
    // `service` (the registry's default label) first, so that a cut never drops it.
    const service: string = CloudWatchDimension.Service;
    const names = Object.keys(labels)
      .filter((k) => !own.includes(k))
      .sort((a, b) => (a === service ? -1 : b === service ? 1 : a < b ? -1 : 1));
    for (const name of names) {
      const value = String(labels[name]);
      if (value === '') {
        continue; // CloudWatch rejects empty dimension values; an empty label is no label.
      }
      if (dims.length >= CLOUDWATCH_LIMITS.dimensionsPerDatum) {
        out.truncatedLabels.push(`${metric}:${name}`);
        continue;
      }
      dims.push({
        Name: name.slice(0, CLOUDWATCH_LIMITS.dimensionNameLength),
        Value: value.slice(0, CLOUDWATCH_LIMITS.dimensionValueLength),
      });
    }
    return dims;
  }
}

function chunks(set: Map<number, number>): Array<Array<[number, number]>> {
  const entries = [...set.entries()].sort((a, b) => a[0] - b[0]);
  const out: Array<Array<[number, number]>> = [];
  for (let i = 0; i < entries.length; i += CLOUDWATCH_LIMITS.valuesPerDatum) {
    out.push(entries.slice(i, i + CLOUDWATCH_LIMITS.valuesPerDatum));
  }
  return out;
}

/** Upper bound of a datum's share of the request body (JSON, uncompressed). */
export function datumBytes(datum: MetricDatum): number {
  return Buffer.byteLength(JSON.stringify(datum)) + 1;
}

/** Splits datums into PutMetricData calls within the datum and payload limits, in order. */
export function splitBatches(
  datums: readonly MetricDatum[],
  limits: { datumsPerCall: number; bytesPerCall: number } = CLOUDWATCH_LIMITS,
  envelopeBytes = 256,
): MetricDatum[][] {
  const batches: MetricDatum[][] = [];
  let current: MetricDatum[] = [];
  let bytes = envelopeBytes;
  for (const datum of datums) {
    const size = datumBytes(datum);
    if (
      current.length > 0 &&
      (current.length >= limits.datumsPerCall || bytes + size > limits.bytesPerCall)
    ) {
      batches.push(current);
      current = [];
      bytes = envelopeBytes;
    }
    current.push(datum);
    bytes += size;
  }
  if (current.length > 0) {
    batches.push(current);
  }
  return batches;
}
