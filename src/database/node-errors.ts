/** Connection errors that mean "this node is gone", not "this query is wrong". */
export function isNodeDownError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
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
    /Connection terminated|connection timeout|Query read timeout|the database system is (shutting down|starting up)/i.test(
      e?.message ?? '',
    )
  );
}
