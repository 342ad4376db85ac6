import type pg from 'pg';
import type { SearchFilters } from './dataset.js';

export interface SqlSearchOptions {
  limit: number;
  efSearch: number;
  maxScanTuples: number;
  /** filtered queries matching at most this many rows are answered exactly (0: never) */
  exactMaxRows: number;
  timeoutMs: number;
}

export type Plan = 'hnsw' | 'exact';

interface BuiltQuery {
  where: string;
  values: unknown[];
}

/** What the service selects for each hit (src/recipes/recipes.repository.ts). */
const HIT_COLUMNS = `id::text AS id, title, cuisine, tags, dietary, total_minutes AS "totalMinutes", author_id::text AS "authorId"`;

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

/**
 * The search the service runs: statement timeout and ef_search per transaction;
 * filtered HNSW queries use pgvector's iterative scan in relaxed order (index forced),
 * re-sorted outside a materialized CTE; exact plans switch index scans off.
 */
function searchStatement(
  vector: string,
  filters: SearchFilters,
  o: SqlSearchOptions,
  plan: Plan,
): Statement {
  const { where, values } = buildWhere(filters, 3);
  const settings: Record<string, string | number> = { statement_timeout: o.timeoutMs };
  if (plan === 'exact') {
    settings.enable_indexscan = 'off';
  } else {
    settings['hnsw.ef_search'] = o.efSearch;
    if (values.length > 0) {
      settings['hnsw.iterative_scan'] = 'relaxed_order';
      settings['hnsw.max_scan_tuples'] = o.maxScanTuples;
      settings.enable_seqscan = 'off';
      settings.enable_bitmapscan = 'off';
    }
  }
  return {
    settings,
    text:
      `WITH nearest AS MATERIALIZED (` +
      `SELECT ${HIT_COLUMNS}, embedding <=> $1::vector AS distance FROM recipes ${where} ORDER BY distance LIMIT $2` +
      `) SELECT * FROM nearest ORDER BY distance`,
    values: [vector, o.limit, ...values],
  };
}

/** Exact top-k: no index scans, so a sequential or bitmap scan plus a sort. */
function exactStatement(vector: string, filters: SearchFilters, limit: number): Statement {
  const { where, values } = buildWhere(filters, 3);
  return {
    settings: { enable_indexscan: 'off' },
    text: `SELECT id::text AS id, embedding <=> $1::vector AS distance FROM recipes ${where} ORDER BY distance LIMIT $2`,
    values: [vector, limit, ...values],
  };
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
  const { where, values } = buildWhere(filters, 1);
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM (SELECT 1 FROM recipes ${where} LIMIT $${values.length + 1}) s`,
    [...values, o.exactMaxRows + 1],
  );
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

/** Same round trips as the service: BEGIN, [count], SET LOCAL, SELECT, COMMIT. */
export function search(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  o: SqlSearchOptions,
): Promise<{ hits: Hit[]; plan: Plan }> {
  return inTransaction(client, async () => {
    const plan = await choosePlan(client, filters, o);
    const hits = await runStatement(client, searchStatement(vector, filters, o, plan));
    return { hits, plan };
  });
}

export function exactSearch(
  client: pg.ClientBase,
  vector: string,
  filters: SearchFilters,
  limit: number,
): Promise<Hit[]> {
  return inTransaction(client, () => runStatement(client, exactStatement(vector, filters, limit)));
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
        : exactStatement(vector, filters, o.limit);
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
