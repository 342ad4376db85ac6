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
import type { VectorStorage } from '../../src/recipes/vector-storage.js';
import {
  localSettingsStatement,
  Rows,
  runStatementBatch,
} from '../../src/database/statement-batch.js';

export interface SqlSearchOptions {
  limit: number;
  efSearch: number;
  maxScanTuples: number;
  /** filtered queries matching at most this many rows are answered exactly (0: never) */
  exactMaxRows: number;
  timeoutMs: number;
  /** cosine distance bound of every search (2: none) */
  maxDistance: number;
  /** what the HNSW index holds (the service's VECTOR_STORAGE); vector when absent */
  storage?: VectorStorage;
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
  vector: string | Buffer,
  filters: SearchFilters,
  o: SqlSearchOptions,
  plan: Plan,
): Statement {
  const storage = plan === 'exact' ? 'vector' : (o.storage ?? 'vector');
  const { sql, params } = nearestStatement(vectorQuery(filters, o), vector, HIT_COLUMNS, storage);
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

/** The service's bounded count: exact plan when at most exactMaxRows rows match. */
async function choosePlan(
  client: pg.ClientBase,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<Plan> {
  if (!isFiltered(filters) || o.exactMaxRows <= 0) {
    return 'hnsw';
  }
  const count = matchCountStatement(vectorQuery(filters, o), o.exactMaxRows);
  const rows = await runStatement(client, {
    settings: { statement_timeout: o.timeoutMs },
    text: count.sql,
    values: count.params,
  });
  return Number(rows[0].n) <= o.exactMaxRows ? 'exact' : 'hnsw';
}

/** Settings and statement in one round trip and one implicit transaction. */
async function runStatement(client: pg.ClientBase, s: Statement, prefix = ''): Promise<Rows> {
  const [, rows] = await runStatementBatch(client, [
    localSettingsStatement({ transaction_read_only: 'on', ...s.settings }),
    { sql: prefix + s.text, params: s.values },
  ]);
  return rows;
}

async function hitsOf(client: pg.ClientBase, s: Statement): Promise<Hit[]> {
  return (await runStatement(client, s)) as unknown as Hit[];
}

/**
 * The service's round trips (src/recipes/search.repository.ts): [the bounded count],
 * settings + SELECT in one statement batch, [settings + exact SELECT when the index scan
 * came back short of `limit`].
 */
export async function search(
  client: pg.ClientBase,
  vector: string | Buffer,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<{ hits: Hit[]; plan: Plan }> {
  const plan = await choosePlan(client, filters, o);
  const hits = await hitsOf(client, searchStatement(vector, filters, o, plan));
  if (plan === 'exact' || hits.length >= o.limit) {
    return { hits, plan };
  }
  return {
    hits: await hitsOf(client, searchStatement(vector, filters, o, 'exact')),
    plan: 'exact',
  };
}

export function exactSearch(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  limit: number,
  maxDistance: number,
): Promise<Hit[]> {
  return hitsOf(client, exactStatement(vector, filters, limit, maxDistance));
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
  const s =
    kind === 'search'
      ? searchStatement(vector, filters, o, await choosePlan(client, filters, o))
      : exactStatement(vector, filters, o.limit, o.maxDistance);
  const rows = await runStatement(client, s, 'EXPLAIN (FORMAT JSON) ');
  const plan = rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>;
  return describePlan(plan[0].Plan);
}
