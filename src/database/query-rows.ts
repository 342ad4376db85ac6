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
