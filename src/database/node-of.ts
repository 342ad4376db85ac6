/**
 * The node a pooled client was obtained for (set by the read router when it hands the
 * client to TypeORM; read by it to tag errors and by the slow-query log).
 */
export const NODE_OF = new WeakMap<object, string>();

/** The node behind a TypeORM query runner's connection, when the router recorded one. */
export function nodeOfRunner(runner: unknown): string | undefined {
  const client = (runner as { databaseConnection?: object } | undefined)?.databaseConnection;
  return client ? NODE_OF.get(client) : undefined;
}
