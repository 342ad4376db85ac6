import { paramBinder } from '../database/query-rows.js';
import type { LocalSettings } from '../database/statement-batch.js';
import type { Contradiction } from './witness-set.js';
import { indexedDistance, type VectorStorage } from './vector-storage.js';

export interface SearchFilters {
  cuisine?: string;
  tags?: string[];
  dietary?: string[];
  maxTotalMinutes?: number;
  authorId?: string;
}

export interface VectorQuery {
  embedding: number[];
  filters: SearchFilters;
  excludeId?: string;
  limit: number;
  maxDistance: number;
}

export interface SearchTuning {
  efSearch: number;
  /** ef_search of the second HNSW attempt when a witness contradicts the first answer. */
  escalationEfSearch: number;
  /** Exact escalations at once per instance; the others (and timed-out ones) are repaired. */
  escalationExactConcurrency: number;
  maxScanTuples: number;
  exactMaxRows: number;
  /** How long a filter set's plan choice is reused (0: count every time). */
  planMemoryMs?: number;
  timeoutMs: number;
}

export interface SearchHitRow {
  id: string;
  title: string;
  cuisine: string;
  tags: string[];
  dietary: string[];
  totalMinutes: number;
  authorId: string | null;
  distance: number;
}

export type SearchPlan = 'hnsw' | 'exact';

export interface SearchResult {
  /** The plan PostgreSQL ran for the rows answered (see `planSettings`). */
  plan: SearchPlan;
  /** The HNSW scan came back short of `limit` and the answer is an exact scan's. */
  exactFallback: boolean;
  hits: SearchHitRow[];
  /** A witness proved the first HNSW answer incomplete (WitnessSet), and what answered instead. */
  escalation?: Contradiction & { outcome: 'wider-hnsw' | 'exact' | 'repaired' };
}

export const HIT_COLUMNS = `id::text AS id, title, cuisine, tags, dietary, total_minutes AS "totalMinutes",
  author_id::text AS "authorId"`;

/** Builds a WHERE clause of bound parameters, appending its values to `params`. */
export function whereClause(filters: SearchFilters, params: unknown[], excludeId?: string): string {
  const clauses = ['embedding IS NOT NULL'];
  const { bind } = paramBinder(params);
  if (filters.cuisine !== undefined) {
    clauses.push(`cuisine = ${bind(filters.cuisine)}`);
  }
  if (filters.tags?.length) {
    clauses.push(`tags @> ${bind(filters.tags)}::text[]`);
  }
  if (filters.dietary?.length) {
    clauses.push(`dietary @> ${bind(filters.dietary)}::text[]`);
  }
  if (filters.maxTotalMinutes !== undefined) {
    clauses.push(`total_minutes <= ${bind(filters.maxTotalMinutes)}`);
  }
  if (filters.authorId !== undefined) {
    clauses.push(`author_id = ${bind(filters.authorId)}::uuid`);
  }
  if (excludeId !== undefined) {
    clauses.push(`id <> ${bind(excludeId)}::uuid`);
  }
  return clauses.join(' AND ');
}

export function hasFilters(f: SearchFilters): boolean {
  return (
    f.cuisine !== undefined ||
    !!f.tags?.length ||
    !!f.dietary?.length ||
    f.maxTotalMinutes !== undefined ||
    f.authorId !== undefined
  );
}

/**
 * The planner settings (all `SET LOCAL`) that make PostgreSQL run the plan we report.
 * - `hnsw`: sequential scans, bitmap scans and sorts are disabled, so the only way left
 *   to produce `ORDER BY distance` is the HNSW index (a B-tree index scan plus a sort
 *   would otherwise win for selective filters, a sequential scan for small tables).
 *   Iterative scans in relaxed order (pgvector ≥ 0.8) keep the index scan going while
 *   rows fail the filters or the distance bound, up to `hnsw.max_scan_tuples`.
 *   NOTE: not strict_order: pgvector then drops every tuple nearer than one it already
 *   returned (hnswgettuple), and with a distance bound in the WHERE clause the nearer
 *   rows found after farther ones are exactly the ones that count.
 * - `exact`: no index scans (the HNSW index has no bitmap scan), so a sequential or
 *   B-tree/GIN bitmap scan of the matching rows and a sort: every distance is computed.
 * Each plan sets every knob the other one changes, so both can run in one transaction.
 * NOTE: jit is off: a disabled plan node that cannot be avoided (the outer sort) adds
 * PostgreSQL's disable_cost (1e10) to the estimate, which then passes jit_above_cost and
 * made every search compile its expressions (≈ 200 ms measured) for a 5 ms query.
 */
export function planSettings(
  plan: SearchPlan,
  tuning: Pick<SearchTuning, 'efSearch' | 'maxScanTuples' | 'timeoutMs'>,
): LocalSettings {
  if (plan === 'exact') {
    return exactSettings(tuning.timeoutMs);
  }
  return {
    statement_timeout: tuning.timeoutMs,
    'hnsw.ef_search': tuning.efSearch,
    'hnsw.iterative_scan': 'relaxed_order',
    'hnsw.max_scan_tuples': tuning.maxScanTuples,
    enable_indexscan: 'on',
    enable_seqscan: 'off',
    enable_bitmapscan: 'off',
    enable_sort: 'off',
    jit: 'off',
  };
}

export function exactSettings(timeoutMs: number): LocalSettings {
  return {
    statement_timeout: timeoutMs,
    enable_indexscan: 'off',
    enable_seqscan: 'on',
    enable_bitmapscan: 'on',
    enable_sort: 'on',
    jit: 'off',
  };
}

/**
 * The nearest-neighbour statement: filters and the distance bound inside the query, so
 * LIMIT counts only rows that will be answered and an index scan goes on past rows
 * beyond the bound. Relaxed order returns nearly sorted rows: the materialised CTE
 * holds them and the outer query restores strict order.
 * `storage` is the distance the rows are chosen by, i.e. the index's (vector-storage.ts):
 * with `halfvec` the CTE orders and bounds by the half-precision distance the index
 * holds, and the answer reports (and is ordered and bounded by) the exact distance.
 * Exact plans pass `vector`: every full distance is computed anyway.
 */
export function nearestStatement(
  q: VectorQuery,
  vector: string | Buffer,
  columns = HIT_COLUMNS,
  storage: VectorStorage = 'vector',
): { sql: string; params: unknown[] } {
  const params: unknown[] = [vector];
  const where = whereClause(q.filters, params, q.excludeId);
  const { bind } = paramBinder(params);
  const bound = bind(q.maxDistance, '::float8');
  const limit = bind(q.limit, '::int');
  if (storage === 'halfvec') {
    const indexed = indexedDistance(storage, '$1');
    return {
      sql: `WITH nearest AS MATERIALIZED (
             SELECT ${columns}, embedding <=> $1::vector AS distance
               FROM recipes WHERE ${where} AND ${indexed} <= ${bound}
              ORDER BY ${indexed} LIMIT ${limit})
           SELECT * FROM nearest WHERE distance <= ${bound} ORDER BY distance`,
      params,
    };
  }
  return {
    sql: `WITH nearest AS MATERIALIZED (
           SELECT ${columns}, embedding <=> $1::vector AS distance
             FROM recipes WHERE ${where} AND embedding <=> $1::vector <= ${bound}
            ORDER BY distance LIMIT ${limit})
         SELECT * FROM nearest ORDER BY distance`,
    params,
  };
}

/** The bounded count that chooses the plan: at most `exactMaxRows + 1` rows are visited. */
export function matchCountStatement(
  q: VectorQuery,
  exactMaxRows: number,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const where = whereClause(q.filters, params, q.excludeId);
  const { bind } = paramBinder(params);
  return {
    sql: `SELECT count(*)::int AS n FROM (SELECT 1 FROM recipes WHERE ${where} LIMIT ${bind(exactMaxRows + 1)}) s`,
    params,
  };
}

/** Given rows by id under the query's filters and bound (the witness repair). */
export function rowsByIdStatement(
  q: VectorQuery,
  vector: string | Buffer,
  ids: string[],
): { sql: string; params: unknown[] } {
  const params: unknown[] = [vector];
  const where = whereClause(q.filters, params, q.excludeId);
  const { bind } = paramBinder(params);
  const bound = bind(q.maxDistance, '::float8');
  return {
    sql: `SELECT ${HIT_COLUMNS}, embedding <=> $1::vector AS distance
            FROM recipes WHERE id = ANY(${bind(ids)}::uuid[]) AND ${where}
             AND embedding <=> $1::vector <= ${bound}`,
    params,
  };
}
