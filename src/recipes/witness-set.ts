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

/** The filterable columns a witness stratum can be of. */
export type StratumColumn = 'cuisine' | 'tags' | 'dietary';

/** The key of the stratum of `value` in `column`: `tags:quick`. */
export function stratumKey(column: StratumColumn, value: string): string {
  return `${column}:${value}`;
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

/** A witness that passes a query's filters and bound, with its distance to the query. */
interface Near {
  w: Witness;
  d: number;
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
  /**
   * Witnesses of single filter values (`stratumKey`), sampled among the rows holding the
   * value: the table-wide sample holds few rows of a value that 10 % of the rows have
   * (about 26 of 256), too few to lie near a filtered query's true neighbours.
   */
  private strata = new Map<string, Witness[]>();
  /** Told when witnesses turned out stale: the table changed since the sample. */
  onStale?: (forgotten: number) => void;

  /** Witnesses held, table-wide and per filter value. */
  get size(): number {
    let n = this.rows.length;
    for (const rows of this.strata.values()) {
      n += rows.length;
    }
    return n;
  }

  /** The filter values that have witnesses of their own. */
  get strataKeys(): string[] {
    return [...this.strata.keys()];
  }

  /** The witnesses of one filter value (`stratumKey`). */
  stratum(key: string): readonly Witness[] {
    return this.strata.get(key) ?? [];
  }

  replace(rows: Witness[], strata: ReadonlyMap<string, Witness[]> = new Map()): void {
    this.rows = rows;
    this.strata = new Map(strata);
  }

  forget(id: string): void {
    this.drop(new Set([id]), false);
  }

  /** The witnesses a query with `filters` is checked against: table-wide, and its values'. */
  private candidates(filters: SearchFilters): readonly Witness[] {
    const own: Witness[][] = [];
    const add = (key: string): void => {
      const rows = this.strata.get(key);
      if (rows) {
        own.push(rows);
      }
    };
    if (filters.cuisine !== undefined) {
      add(stratumKey('cuisine', filters.cuisine));
    }
    for (const tag of filters.tags ?? []) {
      add(stratumKey('tags', tag));
    }
    for (const label of filters.dietary ?? []) {
      add(stratumKey('dietary', label));
    }
    if (own.length === 0) {
      return this.rows;
    }
    const seen = new Set<string>();
    const out: Witness[] = [];
    for (const list of [this.rows, ...own]) {
      for (const w of list) {
        if (!seen.has(w.id)) {
          seen.add(w.id);
          out.push(w);
        }
      }
    }
    return out;
  }

  /**
   * The witnesses a query's answer will be checked against, with their distances: the
   * costly part of the check (a dot product per witness that passes the filters), which
   * depends on the query alone, so that it can run while the database answers.
   */
  probe(
    query: Float32Array,
    filters: SearchFilters,
    maxDistance: number,
    excludeId?: string,
  ): WitnessProbe {
    const near: Near[] = [];
    for (const w of this.candidates(filters)) {
      if (w.unit.length !== query.length || !witnessMatches(w, filters, excludeId)) {
        continue;
      }
      const d = unitDistance(query, w.unit);
      if (d <= maxDistance) {
        near.push({ w, d });
      }
    }
    return new WitnessProbe(this, near, maxDistance);
  }

  /** Drops the witnesses `ids` (found stale) and says so. */
  drop(ids: ReadonlySet<string>, stale = true): void {
    if (ids.size === 0) {
      return;
    }
    this.rows = this.rows.filter((w) => !ids.has(w.id));
    for (const [key, rows] of this.strata) {
      this.strata.set(
        key,
        rows.filter((w) => !ids.has(w.id)),
      );
    }
    if (stale) {
      this.onStale?.(ids.size);
    }
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
    return this.probe(query, filters, maxDistance, excludeId).forgetContradicting(exact, limit);
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
    return this.probe(query, filters, maxDistance, excludeId).contradiction(hits, limit);
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
    return this.probe(query, filters, maxDistance, excludeId).contradictingIds(answer, limit);
  }
}

/** One query's qualifying witnesses (WitnessSet.probe), checked against its answers. */
export class WitnessProbe {
  constructor(
    private readonly set: WitnessSet,
    private readonly near: readonly Near[],
    private readonly maxDistance: number,
  ) {}

  /** The nearest witness contradicting `hits` (a full answer of `limit` rows), or null. */
  contradiction(hits: readonly SearchHitRow[], limit: number): Contradiction | null {
    if (hits.length < limit || limit === 0) {
      return null;
    }
    const last = Number(hits[limit - 1].distance);
    let best: Contradiction | null = null;
    for (const { w, d } of this.nearer(hits, last)) {
      if (!best || d < best.witnessDistance) {
        best = { witnessId: w.id, witnessDistance: d, lastDistance: last };
      }
    }
    return best;
  }

  /** Ids of every witness contradicting `answer` (a full answer of `limit` rows). */
  contradictingIds(answer: readonly SearchHitRow[], limit: number): string[] {
    if (answer.length < limit || limit === 0) {
      return [];
    }
    const last = Number(answer[limit - 1].distance);
    return this.nearer(answer, last).map(({ w }) => w.id);
  }

  /** Drops from the set every witness contradicting an exact answer; returns how many. */
  forgetContradicting(exact: readonly SearchHitRow[], limit: number): number {
    const last = exact.length >= limit ? Number(exact[limit - 1].distance) : this.maxDistance;
    const stale = new Set(this.nearer(exact, last).map(({ w }) => w.id));
    this.set.drop(stale);
    return stale.size;
  }

  /** Witnesses outside `answer` nearer than `last` (they already pass its filters and bound). */
  private nearer(answer: readonly SearchHitRow[], last: number): Near[] {
    if (this.near.length === 0) {
      return [];
    }
    const answered = new Set(answer.map((h) => h.id));
    return this.near.filter(({ w, d }) => !answered.has(w.id) && d < last - DISTANCE_SLACK);
  }
}
