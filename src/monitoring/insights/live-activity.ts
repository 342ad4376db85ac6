import pg from 'pg';
import { normalizeStatement } from '../../database/sql-normalize.js';
import type { SessionInfo } from './blocking-tree.js';
import type { StatementCounters, StatementSnapshot } from './statement-deltas.js';
import { statementKey } from './statement-deltas.js';
import type { ActiveSession } from './wait-accumulator.js';

// Readers of the live views, on a direct connection to the writer. Each is one round
// trip over shared-memory views, limited to the service's database
// (current_database()) and to client backends other than the reader's own. pg_monitor
// (granted to the service's role) makes other roles' sessions and statements visible.

/** pg_stat_statements cannot be read here: `reason` says why, for operators. */
export class StatementsUnavailableError extends Error {
  readonly code = 'PG_STAT_STATEMENTS_UNAVAILABLE';
  constructor(readonly reason: string) {
    super(reason);
  }
}

const CLIENT_SESSIONS = `a.datname = current_database()
     AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()`;

const ACTIVE_SQL = `
  SELECT a.wait_event_type, a.wait_event, a.query_id::text AS query_id
    FROM pg_stat_activity a
   WHERE ${CLIENT_SESSIONS} AND a.state IN ('active', 'fastpath function call')`;

/** Sessions working right now (the load): waiting on an event, or on a CPU when none. */
export async function readActiveSessions(c: pg.Client): Promise<ActiveSession[]> {
  const res = await c.query<{
    wait_event_type: string | null;
    wait_event: string | null;
    query_id: string | null;
  }>(ACTIVE_SQL);
  return res.rows.map((r) => ({
    waitEventType: r.wait_event_type,
    waitEvent: r.wait_event,
    queryId: r.query_id === '0' ? null : r.query_id,
  }));
}

const EXTENSION_SQL = `
  SELECT n.nspname AS schema, e.extversion AS version
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'pg_stat_statements'`;

// PostgreSQL 55000: "pg_stat_statements must be loaded via shared_preload_libraries".
const NOT_LOADED = '55000';

/**
 * Every pg_stat_statements entry of the service's database. Needs the extension's 1.9
 * (PostgreSQL 14: `toplevel`, pg_stat_statements_info). Throws
 * StatementsUnavailableError when the extension is not created in this database or the
 * library is not preloaded (an RDS parameter group without it).
 */
export async function readStatements(c: pg.Client): Promise<StatementSnapshot> {
  const ext = (await c.query<{ schema: string; version: string }>(EXTENSION_SQL)).rows[0];
  if (!ext) {
    throw new StatementsUnavailableError(
      'the pg_stat_statements extension is not created in this database: CREATE EXTENSION pg_stat_statements (on RDS also add it to shared_preload_libraries in the parameter group)',
    );
  }
  const schema = pg.escapeIdentifier(ext.schema);
  try {
    const info = await c.query<{ stats_reset: Date | null }>(
      `SELECT stats_reset FROM ${schema}.pg_stat_statements_info`,
    );
    const rows = await c.query<{
      queryid: string;
      userid: string;
      toplevel: boolean;
      query: string | null;
      calls: string;
      total_exec_time: number;
      rows: string;
      shared_blks_hit: string;
      shared_blks_read: string;
    }>(
      `SELECT s.queryid::text AS queryid, s.userid::text AS userid, s.toplevel, s.query,
              s.calls, s.total_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read
         FROM ${schema}.pg_stat_statements(true) s
        WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND s.queryid IS NOT NULL`,
    );
    const entries = new Map<string, StatementCounters>();
    for (const r of rows.rows) {
      const counters: StatementCounters = {
        queryid: r.queryid,
        userid: r.userid,
        toplevel: r.toplevel,
        // pg_stat_statements replaces constants by $n, but keeps utility statements
        // (SET, CREATE ROLE … PASSWORD) as written: normalised again so no value leaks.
        query: normalizeStatement(r.query ?? ''),
        calls: Number(r.calls),
        totalExecMs: Number(r.total_exec_time),
        rows: Number(r.rows),
        sharedBlksHit: Number(r.shared_blks_hit),
        sharedBlksRead: Number(r.shared_blks_read),
      };
      entries.set(statementKey(counters), counters);
    }
    const reset = info.rows[0]?.stats_reset;
    return {
      takenAt: new Date(),
      statsReset: reset ? reset.toISOString() : null,
      entries,
    };
  } catch (err) {
    if ((err as { code?: string }).code === NOT_LOADED) {
      throw new StatementsUnavailableError(
        'pg_stat_statements is not loaded: add it to shared_preload_libraries (on RDS: the parameter group) and restart',
      );
    }
    throw err;
  }
}

/** Whether pg_stat_statements can be read, and if not, why. */
export async function statementsAvailability(
  c: pg.Client,
): Promise<{ available: boolean; reason: string | null }> {
  try {
    const ext = (await c.query<{ schema: string }>(EXTENSION_SQL)).rows[0];
    if (!ext) {
      throw new StatementsUnavailableError(
        'the pg_stat_statements extension is not created in this database: CREATE EXTENSION pg_stat_statements (on RDS also add it to shared_preload_libraries in the parameter group)',
      );
    }
    await c.query(
      `SELECT 1 FROM ${pg.escapeIdentifier(ext.schema)}.pg_stat_statements(false) LIMIT 1`,
    );
    return { available: true, reason: null };
  } catch (err) {
    if (err instanceof StatementsUnavailableError) {
      return { available: false, reason: err.reason };
    }
    if ((err as { code?: string }).code === NOT_LOADED) {
      return {
        available: false,
        reason:
          'pg_stat_statements is not loaded: add it to shared_preload_libraries (on RDS: the parameter group) and restart',
      };
    }
    throw err;
  }
}

const SESSIONS_SQL = `
  SELECT a.pid,
         CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) ELSE '{}'::int[] END
           AS blocked_by,
         a.usename, a.application_name, host(a.client_addr) AS client_addr, a.state,
         a.wait_event_type, a.wait_event, a.query_id::text AS query_id, a.query,
         a.xact_start, a.state_change,
         l.locktype, l.mode, l.relation::regclass::text AS relation
    FROM pg_stat_activity a
    LEFT JOIN LATERAL (SELECT locktype, mode, relation FROM pg_locks
                        WHERE pid = a.pid AND NOT granted LIMIT 1) l ON true
   WHERE ${CLIENT_SESSIONS}`;

/** Sessions that wait for a lock, and those they wait for. */
export async function readLockSessions(c: pg.Client): Promise<SessionInfo[]> {
  const res = await c.query<{
    pid: number;
    blocked_by: number[];
    usename: string | null;
    application_name: string | null;
    client_addr: string | null;
    state: string | null;
    wait_event_type: string | null;
    wait_event: string | null;
    query_id: string | null;
    query: string | null;
    xact_start: Date | null;
    state_change: Date | null;
    locktype: string | null;
    mode: string | null;
    relation: string | null;
  }>(SESSIONS_SQL);
  const blockers = new Set(res.rows.flatMap((r) => r.blocked_by));
  return res.rows
    .filter((r) => r.blocked_by.length > 0 || blockers.has(r.pid))
    .map((r) => ({
      pid: r.pid,
      blockedBy: r.blocked_by,
      usename: r.usename,
      applicationName: r.application_name,
      clientAddr: r.client_addr,
      state: r.state,
      waitEventType: r.wait_event_type,
      waitEvent: r.wait_event,
      queryId: r.query_id === '0' ? null : r.query_id,
      query: r.query ? normalizeStatement(r.query) : null,
      xactStart: r.xact_start?.toISOString() ?? null,
      stateChange: r.state_change?.toISOString() ?? null,
      waitingFor:
        r.locktype && r.mode ? { locktype: r.locktype, mode: r.mode, relation: r.relation } : null,
    }));
}

export interface ConnectionGroup {
  applicationName: string;
  usename: string | null;
  clientAddr: string | null;
  state: string;
  count: number;
  /** Longest time a session of the group has been idle inside a transaction; null: none. */
  maxIdleInTransactionSeconds: number | null;
  /** Oldest open transaction of the group; null: none open. */
  oldestXactStart: string | null;
}

export interface IdleInTransaction {
  pid: number;
  applicationName: string;
  usename: string | null;
  clientAddr: string | null;
  state: string;
  /** Since the last statement ended (state_change). */
  idleSeconds: number;
  xactStart: string | null;
  xactSeconds: number | null;
  query: string | null;
}

const CONNECTIONS_SQL = `
  SELECT a.application_name, a.usename, host(a.client_addr) AS client_addr,
         coalesce(a.state, 'unknown') AS state, count(*)::int AS n,
         max(greatest(0, extract(epoch FROM now() - a.state_change)))
           FILTER (WHERE a.state LIKE 'idle in transaction%') AS max_idle_xact_s,
         min(a.xact_start) AS oldest_xact_start
    FROM pg_stat_activity a
   WHERE ${CLIENT_SESSIONS}
   GROUP BY 1, 2, 3, 4
   ORDER BY n DESC, 1, 2, 3, 4`;

const IDLE_IN_XACT_SQL = `
  SELECT a.pid, a.application_name, a.usename, host(a.client_addr) AS client_addr, a.state,
         greatest(0, extract(epoch FROM now() - a.state_change)) AS idle_s,
         a.xact_start, greatest(0, extract(epoch FROM now() - a.xact_start)) AS xact_s, a.query
    FROM pg_stat_activity a
   WHERE ${CLIENT_SESSIONS} AND a.state LIKE 'idle in transaction%'
   ORDER BY a.state_change
   LIMIT $1`;

/**
 * Both reads in one transaction: PostgreSQL snapshots pg_stat_activity once per
 * transaction, and now() is fixed, so the groups and the list agree on every age.
 */
export async function readConnections(
  c: pg.Client,
  idleLimit: number,
): Promise<{ groups: ConnectionGroup[]; idleInTransaction: IdleInTransaction[] }> {
  await c.query('BEGIN READ ONLY');
  try {
    const result = await readConnectionsInTransaction(c, idleLimit);
    await c.query('COMMIT');
    return result;
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  }
}

async function readConnectionsInTransaction(
  c: pg.Client,
  idleLimit: number,
): Promise<{ groups: ConnectionGroup[]; idleInTransaction: IdleInTransaction[] }> {
  const groups = await c.query<{
    application_name: string;
    usename: string | null;
    client_addr: string | null;
    state: string;
    n: number;
    max_idle_xact_s: string | null;
    oldest_xact_start: Date | null;
  }>(CONNECTIONS_SQL);
  const idle = await c.query<{
    pid: number;
    application_name: string;
    usename: string | null;
    client_addr: string | null;
    state: string;
    idle_s: string;
    xact_start: Date | null;
    xact_s: string | null;
    query: string | null;
  }>(IDLE_IN_XACT_SQL, [idleLimit]);
  return {
    groups: groups.rows.map((r) => ({
      applicationName: r.application_name,
      usename: r.usename,
      clientAddr: r.client_addr,
      state: r.state,
      count: r.n,
      maxIdleInTransactionSeconds: r.max_idle_xact_s === null ? null : Number(r.max_idle_xact_s),
      oldestXactStart: r.oldest_xact_start?.toISOString() ?? null,
    })),
    idleInTransaction: idle.rows.map((r) => ({
      pid: r.pid,
      applicationName: r.application_name,
      usename: r.usename,
      clientAddr: r.client_addr,
      state: r.state,
      idleSeconds: Number(r.idle_s),
      xactStart: r.xact_start?.toISOString() ?? null,
      xactSeconds: r.xact_s === null ? null : Number(r.xact_s),
      query: r.query ? normalizeStatement(r.query) : null,
    })),
  };
}
