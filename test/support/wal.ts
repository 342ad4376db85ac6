import { superQuery } from './databases.js';
import { until } from './wait.js';

/**
 * Switches the primary on `port` to a new WAL segment and waits until its archiver has
 * archived it (everything committed before the call is then in the backup repository).
 * Returns the segment and the archiver's last one; the caller asserts on them.
 */
export async function archiveCurrentWal(
  env: Record<string, string>,
  port: number,
  database = 'postgres',
  timeoutMs = 120_000,
): Promise<{ segment: string; lastArchived: string | null }> {
  const res = await superQuery(env, port, database, `SELECT pg_walfile_name(pg_switch_wal()) AS f`);
  const segment = (res.rows[0] as { f: string }).f;
  const lastArchived = await until(
    async () =>
      (
        (
          await superQuery(
            env,
            port,
            database,
            `SELECT last_archived_wal AS w FROM pg_stat_archiver`,
          )
        ).rows[0] as { w: string | null }
      ).w,
    (w) => w !== null && w >= segment,
    timeoutMs,
    250,
  );
  return { segment, lastArchived };
}
