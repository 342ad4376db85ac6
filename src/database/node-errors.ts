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
