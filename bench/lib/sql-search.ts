import type pg from 'pg';
import type { SearchFilters } from './dataset.js';

export interface SqlSearchOptions {
  limit: number;
  efSearch: number;
  maxScanTuples: number;
}

interface BuiltQuery {
  where: string;
  values: unknown[];
}

/** The service's filter semantics: tags/dietary must all match. */
export function buildWhere(filters: SearchFilters, firstParam: number): BuiltQuery {
  const clauses: string[] = [];
  const values: unknown[] = [];
  const param = (v: unknown): string => {
    values.push(v);
    return `$${firstParam + values.length - 1}`;
  };
  if (filters.cuisine !== undefined) {
    clauses.push(`cuisine = ${param(filters.cuisine)}`);
  }
  if (filters.tags?.length) {
    clauses.push(`tags @> ${param(filters.tags)}::text[]`);
  }
  if (filters.dietary?.length) {
    clauses.push(`dietary @> ${param(filters.dietary)}::text[]`);
  }
  if (filters.maxTotalMinutes !== undefined) {
    clauses.push(`total_minutes <= ${param(filters.maxTotalMinutes)}`);
  }
  if (filters.authorId !== undefined) {
    clauses.push(`author_id = ${param(filters.authorId)}::uuid`);
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

export function isFiltered(filters: SearchFilters): boolean {
  return buildWhere(filters, 1).values.length > 0;
}

interface Statement {
  setup: string;
  text: string;
  values: unknown[];
}

/**
 * HNSW search as the service runs it: ef_search per transaction; filtered queries use
 * pgvector's iterative scan in relaxed order, re-sorted outside a materialized CTE.
 */
function approxStatement(vector: string, filters: SearchFilters, o: SqlSearchOptions): Statement {
  const { where, values } = buildWhere(filters, 3);
  if (values.length === 0) {
    return {
      setup: `BEGIN; SET LOCAL hnsw.ef_search = ${o.efSearch}`,
      text: `SELECT id, embedding <=> $1 AS distance FROM recipes ORDER BY distance LIMIT $2`,
      values: [vector, o.limit],
    };
  }
  return {
    setup:
      `BEGIN; SET LOCAL hnsw.ef_search = ${o.efSearch}; ` +
      `SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.max_scan_tuples = ${o.maxScanTuples}`,
    text:
      `WITH candidates AS MATERIALIZED (` +
      `SELECT id, embedding <=> $1 AS distance FROM recipes ${where} ORDER BY distance LIMIT $2` +
      `) SELECT id, distance FROM candidates ORDER BY distance`,
    values: [vector, o.limit, ...values],
  };
}

/** Exact top-k: no index scans, so a sequential or bitmap scan plus a sort. */
function exactStatement(vector: string, filters: SearchFilters, limit: number): Statement {
  const { where, values } = buildWhere(filters, 3);
  return {
    setup: 'BEGIN; SET LOCAL enable_indexscan = off',
    text: `SELECT id, embedding <=> $1 AS distance FROM recipes ${where} ORDER BY distance LIMIT $2`,
    values: [vector, limit, ...values],
  };
}

export interface Hit {
  id: string;
  distance: number;
}

async function runInTransaction(client: pg.ClientBase, s: Statement): Promise<Hit[]> {
  await client.query(s.setup);
  try {
    const { rows } = await client.query<Hit>(s.text, s.values);
    await client.query('COMMIT');
    return rows;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

export function approxSearch(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<Hit[]> {
  return runInTransaction(client, approxStatement(vector, filters, o));
}

export function exactSearch(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  limit: number,
): Promise<Hit[]> {
  return runInTransaction(client, exactStatement(vector, filters, limit));
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function describePlan(node: PlanNode): string {
  const self = node['Index Name']
    ? `${node['Node Type']} on ${node['Index Name']}`
    : node['Node Type'];
  const children = (node.Plans ?? []).map(describePlan);
  return children.length ? `${self} > ${children.join(' + ')}` : self;
}

/** The plan PostgreSQL picks for one query of a kind, as a one-line node list. */
export async function explain(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  kind: 'approx' | 'exact',
  o: SqlSearchOptions,
): Promise<string> {
  const s =
    kind === 'approx'
      ? approxStatement(vector, filters, o)
      : exactStatement(vector, filters, o.limit);
  await client.query(s.setup);
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      `EXPLAIN (FORMAT JSON) ${s.text}`,
      s.values,
    );
    return describePlan(rows[0]['QUERY PLAN'][0].Plan);
  } finally {
    await client.query('ROLLBACK');
  }
}
