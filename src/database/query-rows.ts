import type { EntityManager } from 'typeorm';

/**
 * Runs bound-parameter SQL and returns its rows. TypeORM's postgres driver answers
 * UPDATE/DELETE with `[rows, affectedCount]` but SELECT/INSERT with `rows`; this
 * evens that out so `RETURNING` reads the same everywhere.
 */
export async function queryRows<T>(
  m: EntityManager,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const result: unknown = await m.query(sql, params);
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  ) {
    return result[0] as T[];
  }
  return result as T[];
}

/**
 * Collects bound parameters while SQL text is assembled: `bind(value, '::uuid')`
 * appends the value and returns its placeholder (`$3::uuid`). Values never enter the text.
 */
export function paramBinder(params: unknown[] = []): {
  params: unknown[];
  bind: (value: unknown, cast?: string) => string;
} {
  return {
    params,
    bind: (value, cast = '') => {
      params.push(value);
      return `$${params.length}${cast}`;
    },
  };
}

/**
 * Ids of requests in `table` (with `status`, `created_at`, `started_at`) that are
 * queued, or running, for longer than `ageMs`: work an instance left behind.
 * `table` is a constant of the caller, never input.
 */
export async function staleRequestIds(
  m: EntityManager,
  table: string,
  ageMs: number,
  limit: number,
  /** Also failed requests with fewer attempts than this (0: never retried automatically). */
  retryFailedBelow = 0,
): Promise<string[]> {
  const rows: Array<{ id: string }> = await m.query(
    `SELECT id::text AS id FROM ${table}
      WHERE (status = 'queued' AND created_at < now() - make_interval(secs => $1::float8 / 1000))
         OR (status IN ('running', 'failed') AND started_at < now() - make_interval(secs => $1::float8 / 1000)
             AND (status = 'running' OR attempts < $3))
      ORDER BY created_at LIMIT $2`,
    [ageMs, limit, retryFailedBelow],
  );
  return rows.map((r) => r.id);
}
