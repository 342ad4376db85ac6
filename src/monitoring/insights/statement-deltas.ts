/** One pg_stat_statements entry of the service's database, cumulative since its creation. */
export interface StatementCounters {
  queryid: string;
  userid: string;
  toplevel: boolean;
  /** Normalised by pg_stat_statements (constants are $n), and again by us. */
  query: string;
  calls: number;
  totalExecMs: number;
  rows: number;
  sharedBlksHit: number;
  sharedBlksRead: number;
}

export interface StatementSnapshot {
  takenAt: Date;
  /** pg_stat_statements_info.stats_reset: changes when everything was reset. */
  statsReset: string | null;
  /** By statementKey(). */
  entries: Map<string, StatementCounters>;
}

/** What one statement (queryid) did between two snapshots. */
export interface StatementDelta {
  queryid: string;
  query: string;
  calls: number;
  totalExecMs: number;
  rows: number;
  sharedBlksHit: number;
  sharedBlksRead: number;
}

/** pg_stat_statements keeps one entry per (userid, dbid, queryid, toplevel); dbid is fixed here. */
export function statementKey(
  c: Pick<StatementCounters, 'userid' | 'queryid' | 'toplevel'>,
): string {
  return `${c.userid}:${c.queryid}:${c.toplevel ? 't' : 'f'}`;
}

/**
 * The work done between two snapshots, per queryid (its entries of every role and
 * nesting level summed), the most time-consuming first, at most `limit`.
 *
 * Counters only grow while an entry lives. An entry whose counters went backwards, or
 * that the previous snapshot did not have, was (re)created since: pg_stat_statements_reset(),
 * or evicted at pg_stat_statements.max and seen again. Its whole current value is then
 * the delta (it all happened after the entry was created, so after the previous
 * snapshot or the reset). A changed stats_reset means every entry was reset.
 */
export function statementDeltas(
  previous: StatementSnapshot,
  current: StatementSnapshot,
  limit: number,
): StatementDelta[] {
  const resetAll =
    previous.statsReset !== null &&
    current.statsReset !== null &&
    previous.statsReset !== current.statsReset;
  const byQuery = new Map<string, StatementDelta>();
  for (const [key, now] of current.entries) {
    const before = resetAll ? undefined : previous.entries.get(key);
    const restarted =
      before === undefined || now.calls < before.calls || now.totalExecMs < before.totalExecMs;
    const base = restarted ? undefined : before;
    const calls = now.calls - (base?.calls ?? 0);
    if (calls <= 0) {
      continue;
    }
    const d = byQuery.get(now.queryid) ?? {
      queryid: now.queryid,
      query: now.query,
      calls: 0,
      totalExecMs: 0,
      rows: 0,
      sharedBlksHit: 0,
      sharedBlksRead: 0,
    };
    d.calls += calls;
    d.totalExecMs += Math.max(0, now.totalExecMs - (base?.totalExecMs ?? 0));
    d.rows += Math.max(0, now.rows - (base?.rows ?? 0));
    d.sharedBlksHit += Math.max(0, now.sharedBlksHit - (base?.sharedBlksHit ?? 0));
    d.sharedBlksRead += Math.max(0, now.sharedBlksRead - (base?.sharedBlksRead ?? 0));
    byQuery.set(now.queryid, d);
  }
  return [...byQuery.values()]
    .sort((a, b) => b.totalExecMs - a.totalExecMs || b.calls - a.calls)
    .slice(0, limit);
}
