import type { SearchFilters, SearchHitRow } from './search-plan.js';

/** A sampled recipe: its unit embedding and the columns the search filters on. */
export interface Witness {
  id: string;
  /** The embedding scaled to length 1 (cosine distance = 1 − dot product). */
  unit: Float32Array;
  cuisine: string;
  tags: readonly string[];
  dietary: readonly string[];
  totalMinutes: number;
  authorId: string | null;
}

/** A witness that proves an answer incomplete: it qualifies and is nearer than the last hit. */
export interface Contradiction {
  witnessId: string;
  witnessDistance: number;
  /** Distance of the answer's last (`limit`-th) row. */
  lastDistance: number;
}

/**
 * pgvector computes distances in float32 and this check in float64 over float32 copies:
 * a witness must be nearer by more than this before it counts.
 */
export const DISTANCE_SLACK = 1e-4;

/** The unit vector of `v` as float32, or null for a zero vector (no direction). */
export function unitVector(v: ArrayLike<number>): Float32Array | null {
  let norm = 0;
  for (let i = 0; i < v.length; i++) {
    norm += v[i] * v[i];
  }
  if (norm === 0) {
    return null;
  }
  const scale = 1 / Math.sqrt(norm);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    out[i] = v[i] * scale;
  }
  return out;
}

/** Cosine distance between two unit vectors of the same length (unrolled by 4: the hot loop). */
export function unitDistance(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let d0 = 0;
  let d1 = 0;
  let d2 = 0;
  let d3 = 0;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    d0 += a[i] * b[i];
    d1 += a[i + 1] * b[i + 1];
    d2 += a[i + 2] * b[i + 2];
    d3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) {
    d0 += a[i] * b[i];
  }
  return 1 - (d0 + d1 + d2 + d3);
}

/** The same predicate as `whereClause` (search-plan.ts), on a witness's columns. */
export function witnessMatches(w: Witness, f: SearchFilters, excludeId?: string): boolean {
  if (excludeId !== undefined && w.id === excludeId) {
    return false;
  }
  if (f.cuisine !== undefined && w.cuisine !== f.cuisine) {
    return false;
  }
  if (f.tags?.length && !f.tags.every((t) => w.tags.includes(t))) {
    return false;
  }
  if (f.dietary?.length && !f.dietary.every((d) => w.dietary.includes(d))) {
    return false;
  }
  if (f.maxTotalMinutes !== undefined && !(w.totalMinutes <= f.maxTotalMinutes)) {
    return false;
  }
  if (f.authorId !== undefined && w.authorId !== f.authorId) {
    return false;
  }
  return true;
}

/**
 * The known rows an approximate answer must not have skipped: a random sample of the
 * table, refreshed from the database. An HNSW answer of `limit` rows is provably
 * incomplete when a sampled row that passes the same filters and distance bound is
 * nearer to the query than the answer's last row and is not in it: the exact answer
 * would hold that row. This catches the gross failures (the search settled in the wrong
 * part of the graph, a population the graph barely links to), where many qualifying
 * rows are nearer than anything answered; it cannot see a miss of a few rows that no
 * sampled row lies among. It never flags a right answer, except through a witness
 * deleted or changed since the sample (then the escalated answer drops it: `forget`).
 */
export class WitnessSet {
  private rows: Witness[] = [];
  /** Told when witnesses turned out stale: the table changed since the sample. */
  onStale?: (forgotten: number) => void;

  get size(): number {
    return this.rows.length;
  }

  replace(rows: Witness[]): void {
    this.rows = rows;
  }

  forget(id: string): void {
    this.rows = this.rows.filter((w) => w.id !== id);
  }

  /**
   * Drops every witness that contradicts an exact answer: such a row cannot exist as
   * sampled (deleted, or its embedding or columns changed since). Returns how many.
   */
  forgetContradicting(
    query: Float32Array,
    filters: SearchFilters,
    maxDistance: number,
    exact: readonly SearchHitRow[],
    limit: number,
    excludeId?: string,
  ): number {
    const last = exact.length >= limit ? Number(exact[limit - 1].distance) : maxDistance;
    const stale = new Set<string>();
    for (const { w } of this.nearer(query, filters, maxDistance, exact, last, excludeId)) {
      stale.add(w.id);
    }
    if (stale.size > 0) {
      this.rows = this.rows.filter((w) => !stale.has(w.id));
      this.onStale?.(stale.size);
    }
    return stale.size;
  }

  /** The nearest witness contradicting `hits` (a full answer of `limit` rows), or null. */
  contradiction(
    query: Float32Array,
    filters: SearchFilters,
    maxDistance: number,
    hits: readonly SearchHitRow[],
    limit: number,
    excludeId?: string,
  ): Contradiction | null {
    if (hits.length < limit || limit === 0) {
      return null;
    }
    const last = Number(hits[limit - 1].distance);
    let best: Contradiction | null = null;
    for (const { w, d } of this.nearer(query, filters, maxDistance, hits, last, excludeId)) {
      if (!best || d < best.witnessDistance) {
        best = { witnessId: w.id, witnessDistance: d, lastDistance: last };
      }
    }
    return best;
  }

  /** Ids of every witness contradicting `answer` (a full answer of `limit` rows). */
  contradictingIds(
    query: Float32Array,
    filters: SearchFilters,
    maxDistance: number,
    answer: readonly SearchHitRow[],
    limit: number,
    excludeId?: string,
  ): string[] {
    if (answer.length < limit || limit === 0) {
      return [];
    }
    const last = Number(answer[limit - 1].distance);
    return [...this.nearer(query, filters, maxDistance, answer, last, excludeId)].map(
      ({ w }) => w.id,
    );
  }

  /** Witnesses outside `answer` that pass its filters and bound and are nearer than `last`. */
  private *nearer(
    query: Float32Array,
    filters: SearchFilters,
    maxDistance: number,
    answer: readonly SearchHitRow[],
    last: number,
    excludeId?: string,
  ): Generator<{ w: Witness; d: number }> {
    if (this.rows.length === 0) {
      return;
    }
    const answered = new Set(answer.map((h) => h.id));
    for (const w of this.rows) {
      if (w.unit.length !== query.length || answered.has(w.id)) {
        continue;
      }
      if (!witnessMatches(w, filters, excludeId)) {
        continue;
      }
      const d = unitDistance(query, w.unit);
      if (d <= maxDistance && d < last - DISTANCE_SLACK) {
        yield { w, d };
      }
    }
  }
}
