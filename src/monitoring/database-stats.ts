import type pg from 'pg';

/** What every node reports about itself (its own statistics; replicas count their reads). */
export interface NodeStats {
  /** Client backends by pg_stat_activity.state (the sampler's own session left out). */
  connections: Record<string, number>;
  maxConnections: number;
  /** Age of the oldest open transaction of a client backend; 0 when none is open. */
  longestTransactionSeconds: number;
  /** pg_stat_database of the service's database: cumulative since the statistics reset. */
  commits: number;
  rollbacks: number;
  blocksHit: number;
  blocksRead: number;
  deadlocks: number;
  tempBytes: number;
  /**
   * Sessions of any database and kind (autovacuum included) active and waiting on no
   * event: running on a CPU or queued for one (Performance Insights' "CPU" load).
   */
  onCpuSessions: number;
}

/** Figures that only mean something on the writer (WAL, archiver, size, wraparound). */
export interface WriterStats {
  walBytes: number | null;
  archivedCount: number;
  archiveFailures: number;
  databaseSizeBytes: number;
  /** max(age(datfrozenxid)) over the cluster's databases: transactions since the oldest freeze. */
  xidAge: number;
  replicasStreaming: number;
}

// One round trip each; every view read is in shared memory (no table scans), so the
// cost does not grow with the data. pg_monitor (granted to the service's role) makes
// other roles' sessions visible in pg_stat_activity.
const NODE_SQL = `
  SELECT (SELECT coalesce(json_object_agg(state, n), '{}'::json)
            FROM (SELECT coalesce(state, 'unknown') AS state, count(*) AS n
                    FROM pg_stat_activity
                   WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                   GROUP BY 1) s) AS connections,
         current_setting('max_connections')::int AS max_connections,
         (SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)
            FROM pg_stat_activity
           WHERE backend_type = 'client backend' AND xact_start IS NOT NULL
             AND pid <> pg_backend_pid()) AS longest_xact_s,
         (SELECT count(*) FROM pg_stat_activity
           WHERE state = 'active' AND wait_event IS NULL AND pid <> pg_backend_pid()) AS on_cpu,
         d.xact_commit, d.xact_rollback, d.blks_hit, d.blks_read, d.deadlocks, d.temp_bytes
    FROM pg_stat_database d
   WHERE d.datname = current_database()`;

const WRITER_SQL = `
  SELECT a.archived_count, a.failed_count,
         pg_database_size(current_database()) AS size_bytes,
         (SELECT max(age(datfrozenxid)) FROM pg_database WHERE datallowconn) AS xid_age,
         (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') AS streaming,
         current_setting('server_version_num')::int AS version
    FROM pg_stat_archiver a`;

// pg_stat_wal exists from PostgreSQL 14 on.
const WAL_SQL = `SELECT wal_bytes::text AS wal_bytes FROM pg_stat_wal`;

export async function readNodeStats(client: pg.Client): Promise<NodeStats> {
  const row = (await client.query<Record<string, unknown>>(NODE_SQL)).rows[0];
  if (!row) {
    throw new Error('pg_stat_database has no row for the current database');
  }
  const connections: Record<string, number> = {};
  for (const [state, n] of Object.entries(row.connections as Record<string, unknown>)) {
    connections[state] = Number(n);
  }
  return {
    connections,
    maxConnections: Number(row.max_connections),
    longestTransactionSeconds: Number(row.longest_xact_s),
    commits: Number(row.xact_commit),
    rollbacks: Number(row.xact_rollback),
    blocksHit: Number(row.blks_hit),
    blocksRead: Number(row.blks_read),
    deadlocks: Number(row.deadlocks),
    tempBytes: Number(row.temp_bytes),
    onCpuSessions: Number(row.on_cpu),
  };
}

export async function readWriterStats(client: pg.Client): Promise<WriterStats> {
  const row = (await client.query<Record<string, unknown>>(WRITER_SQL)).rows[0];
  const wal =
    Number(row.version) >= 140_000
      ? (await client.query<{ wal_bytes: string }>(WAL_SQL)).rows[0]?.wal_bytes
      : undefined;
  return {
    walBytes: wal === undefined ? null : Number(wal),
    archivedCount: Number(row.archived_count),
    archiveFailures: Number(row.failed_count),
    databaseSizeBytes: Number(row.size_bytes),
    xidAge: Number(row.xid_age),
    replicasStreaming: Number(row.streaming),
  };
}
