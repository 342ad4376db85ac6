/** SQLSTATE query_canceled: statement_timeout (or a cancel request) stopped the statement. */
export const QUERY_CANCELED = '57014';

/** Connection errors that mean "this node is gone", not "this query is wrong". */
export function isNodeDownError(err: unknown): boolean {
  const e = err as { code?: string; message?: string; name?: string };
  return (
    // TypeORM releases a runner whose connection died; later queries on it fail so.
    e?.name === 'QueryRunnerProviderAlreadyReleasedError' ||
    e?.name === 'QueryRunnerAlreadyReleasedError' ||
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      '57P01',
      '57P02',
      '57P03',
      '08006',
      '08001',
    ].includes(e?.code ?? '') ||
    /Connection terminated|connection timeout|Query read timeout|the database system is (shutting down|starting up)|terminating connection/i.test(
      e?.message ?? '',
    )
  );
}

/**
 * A read that raced a catalog change replayed on a hot standby: the planner listed an
 * index (or table) whose drop the replica replayed before the executor opened it, e.g.
 * the old index at the end of REINDEX CONCURRENTLY (SQLSTATE XX000 from relation_open).
 * The same read planned again sees the new catalog.
 */
export function isCatalogRaceError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'XX000' && /^could not open relation with OID \d+$/.test(e?.message ?? '');
}
