import { Progress } from './progress.js';
import type { Rng } from './rng.js';
import { round, summarize, type LatencySummary } from './stats.js';

/**
 * Zipf over ranks 1..n: P(k) ∝ 1 / k^s. Sampling is a binary search in the
 * precomputed CDF, so any s (also s <= 1) works.
 */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let k = 1; k <= n; k++) {
      sum += 1 / k ** s;
      this.cdf[k - 1] = sum;
    }
    for (let i = 0; i < n; i++) {
      this.cdf[i] /= sum;
    }
  }

  /** A 0-based rank (0 is the most popular). */
  sample(rng: Rng): number {
    const u = rng.uniform();
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid] < u) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /** Share of all requests that go to the `k` most popular items. */
  headShare(k: number): number {
    return k <= 0 ? 0 : this.cdf[Math.min(k, this.n) - 1];
  }
}

export interface LoopResult {
  seconds: number;
  completed: number;
  errors: number;
  /** status -> count of the non-2xx answers and transport errors ('error') */
  failures: Record<string, number>;
  rps: number;
  latencyMs: LatencySummary;
  /** requests for an id this run had never asked for before: misses no cache can avoid */
  firstTouches: number;
  distinctIds: number;
}

/**
 * `concurrency` closed-loop workers for `durationS`: each sends its next request as
 * soon as the previous one answered. Ids come from one shared seeded sequence.
 * `seen` carries the ids requested so far (across warm-up and measured phase).
 */
export async function closedLoop(opts: {
  concurrency: number;
  durationS: number;
  next: () => string;
  send: (id: string) => Promise<number>;
  seen: Set<string>;
  label: string;
}): Promise<LoopResult> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let errors = 0;
  let firstTouches = 0;
  const distinct = new Set<string>();
  const t0 = performance.now();
  const end = t0 + opts.durationS * 1000;
  const progress = new Progress(opts.label, opts.durationS, 's', 5_000);
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (performance.now() < end) {
        const id = opts.next();
        if (!opts.seen.has(id)) {
          opts.seen.add(id);
          firstTouches++;
        }
        distinct.add(id);
        const s = performance.now();
        let status: number | string;
        try {
          status = await opts.send(id);
        } catch (err) {
          status = `error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 80);
        }
        latencies.push(performance.now() - s);
        if (typeof status !== 'number' || status < 200 || status > 299) {
          errors++;
          failures[String(status)] = (failures[String(status)] ?? 0) + 1;
        }
        progress.update(Math.round((performance.now() - t0) / 1000));
      }
    }),
  );
  const seconds = progress.done(opts.durationS);
  return {
    seconds: round(seconds, 2),
    completed: latencies.length,
    errors,
    failures,
    rps: round(latencies.length / seconds, 1),
    latencyMs: summarize(latencies),
    firstTouches,
    distinctIds: distinct.size,
  };
}

// ---------------------------------------------------------------------------
// Prometheus text format

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of a /metrics answer (comments and blank lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') {
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) {
      continue;
    }
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `match`. */
export function metricSum(
  samples: readonly Sample[],
  name: string,
  match: Record<string, string> = {},
): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) {
      sum += s.value;
    }
  }
  return sum;
}

export interface HistogramDelta {
  count: number;
  sumSeconds: number;
  /** upper bound -> cumulative count (+Inf as Infinity) */
  buckets: Array<[number, number]>;
}

/** What a histogram observed between two scrapes. */
export function histogramDelta(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
): HistogramDelta {
  const buckets = (samples: readonly Sample[]): Map<number, number> => {
    const m = new Map<number, number>();
    for (const s of samples) {
      if (s.name === `${name}_bucket`) {
        m.set(s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value);
      }
    }
    return m;
  };
  const b0 = buckets(before);
  const b1 = buckets(after);
  return {
    count: metricSum(after, `${name}_count`) - metricSum(before, `${name}_count`),
    sumSeconds: metricSum(after, `${name}_sum`) - metricSum(before, `${name}_sum`),
    buckets: [...b1.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([le, v]) => [le, v - (b0.get(le) ?? 0)] as [number, number]),
  };
}

/**
 * Prometheus' histogram_quantile: linear interpolation inside the bucket that holds
 * the rank; in the +Inf bucket, the highest finite bound. Null without observations.
 */
export function histogramQuantile(h: HistogramDelta, q: number): number | null {
  const total = h.buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) {
    return null;
  }
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of h.buckets) {
    if (count >= rank) {
      if (le === Infinity) {
        return prevLe;
      }
      const inBucket = count - prevCount;
      return inBucket <= 0 ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
