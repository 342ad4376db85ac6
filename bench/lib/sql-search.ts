import type pg from 'pg';
import {
  exactSettings,
  HIT_COLUMNS,
  matchCountStatement,
  nearestStatement,
  planSettings,
  type SearchPlan,
  type VectorQuery,
} from '../../src/recipes/search-plan.js';
import type { SearchFilters } from './dataset.js';

export interface SqlSearchOptions {
  limit: number;
  efSearch: number;
  maxScanTuples: number;
  /** filtered queries matching at most this many rows are answered exactly (0: never) */
  exactMaxRows: number;
  timeoutMs: number;
  /** cosine distance bound of every search (2: none) */
  maxDistance: number;
}

export type Plan = SearchPlan;

interface BuiltQuery {
  where: string;
  values: unknown[];
}

/** The service's filter semantics: tags/dietary must all match. */
export function buildWhere(filters: SearchFilters, firstParam: number): BuiltQuery {
  const clauses = ['embedding IS NOT NULL'];
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
  return { where: `WHERE ${clauses.join(' AND ')}`, values };
}

export function isFiltered(filters: SearchFilters): boolean {
  return buildWhere(filters, 1).values.length > 0;
}

export interface Hit {
  id: string;
  distance: number;
}

interface Statement {
  settings: Record<string, string | number>;
  text: string;
  values: unknown[];
}

function vectorQuery(filters: SearchFilters, o: SqlSearchOptions, limit = o.limit): VectorQuery {
  return { embedding: [], filters, limit, maxDistance: o.maxDistance };
}

/**
 * The statement the service runs for `plan` (src/recipes/search-plan.ts, imported, so
 * both sides stay the same): filters and the distance bound inside a materialized CTE,
 * re-sorted outside; the planner settings that make PostgreSQL run that plan.
 */
function searchStatement(
  vector: string,
  filters: SearchFilters,
  o: SqlSearchOptions,
  plan: Plan,
): Statement {
  const { sql, params } = nearestStatement(vectorQuery(filters, o), vector, HIT_COLUMNS);
  return { settings: planSettings(plan, o), text: sql, values: params };
}

/** Exact top-k (ground truth, no time limit): no index scans, so a sequential or bitmap scan plus a sort. */
function exactStatement(
  vector: string,
  filters: SearchFilters,
  limit: number,
  maxDistance: number,
): Statement {
  const { sql, params } = nearestStatement(
    { embedding: [], filters, limit, maxDistance },
    vector,
    'id::text AS id',
  );
  return { settings: exactSettings(0), text: sql, values: params };
}

function setLocal(settings: Record<string, string | number>): string {
  return Object.entries(settings)
    .map(([k, v]) => `SET LOCAL ${k} = ${typeof v === 'number' ? v : `'${v}'`}`)
    .join('; ');
}

/** The service's bounded count: exact plan when at most exactMaxRows rows match. */
async function choosePlan(
  client: pg.ClientBase,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<Plan> {
  if (!isFiltered(filters) || o.exactMaxRows <= 0) {
    return 'hnsw';
  }
  const { sql, params } = matchCountStatement(vectorQuery(filters, o), o.exactMaxRows);
  const { rows } = await client.query<{ n: number }>(sql, params);
  return rows[0].n <= o.exactMaxRows ? 'exact' : 'hnsw';
}

async function runStatement(client: pg.ClientBase, s: Statement): Promise<Hit[]> {
  await client.query(setLocal(s.settings));
  const { rows } = await client.query<Hit>(s.text, s.values);
  return rows;
}

async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/**
 * Same round trips as the service: BEGIN, [count], SET LOCAL, SELECT, [SET LOCAL,
 * SELECT when the index scan came back short of `limit`], COMMIT.
 */
export function search(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<{ hits: Hit[]; plan: Plan }> {
  return inTransaction(client, async () => {
    const plan = await choosePlan(client, filters, o);
    const hits = await runStatement(client, searchStatement(vector, filters, o, plan));
    if (plan === 'exact' || hits.length >= o.limit) {
      return { hits, plan };
    }
    return {
      hits: await runStatement(client, searchStatement(vector, filters, o, 'exact')),
      plan: 'exact',
    };
  });
}

export function exactSearch(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  limit: number,
  maxDistance: number,
): Promise<Hit[]> {
  return inTransaction(client, () =>
    runStatement(client, exactStatement(vector, filters, limit, maxDistance)),
  );
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
  kind: 'search' | 'exact',
  o: SqlSearchOptions,
): Promise<string> {
  await client.query('BEGIN');
  try {
    const s =
      kind === 'search'
        ? searchStatement(vector, filters, o, await choosePlan(client, filters, o))
        : exactStatement(vector, filters, o.limit, o.maxDistance);
    await client.query(setLocal(s.settings));
    const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
      `EXPLAIN (FORMAT JSON) ${s.text}`,
      s.values,
    );
    return describePlan(rows[0]['QUERY PLAN'][0].Plan);
  } finally {
    await client.query('ROLLBACK');
  }
}
