/** A client session of the service's database, as pg_stat_activity shows it. */
export interface SessionInfo {
  pid: number;
  /** pg_blocking_pids(pid). */
  blockedBy: number[];
  usename: string | null;
  applicationName: string | null;
  clientAddr: string | null;
  state: string | null;
  waitEventType: string | null;
  waitEvent: string | null;
  queryId: string | null;
  /** The statement with literals replaced (never a value). */
  query: string | null;
  xactStart: string | null;
  stateChange: string | null;
  /** What a blocked session asks for (pg_locks, not granted). */
  waitingFor: { locktype: string; mode: string; relation: string | null } | null;
}

export interface BlockingNode extends Partial<SessionInfo> {
  pid: number;
  /** Sessions waiting for this one (and, nested, for them). */
  blocking: BlockingNode[];
  /** A blocker outside the view (another database, a prepared transaction): pid only. */
  outsideView?: true;
  /** This pid already appears higher on the same branch: a lock cycle (deadlock). */
  cycle?: true;
}

/**
 * Blocking trees from pg_blocking_pids: each root blocks others and waits for nobody
 * (the session to look at); under it, who waits for it, nested. A session blocked by
 * several others appears under each of them. Sessions in a cycle (a deadlock the
 * detector has not broken yet) have no such root: one of them is chosen, and the
 * branch stops where the cycle closes.
 */
export function blockingTrees(sessions: SessionInfo[]): BlockingNode[] {
  const byPid = new Map(sessions.map((s) => [s.pid, s]));
  const waiters = new Map<number, SessionInfo[]>();
  for (const s of sessions) {
    for (const b of s.blockedBy) {
      const list = waiters.get(b) ?? [];
      list.push(s);
      waiters.set(b, list);
    }
  }
  const placed = new Set<number>();
  const build = (pid: number, path: Set<number>): BlockingNode => {
    placed.add(pid);
    const session = byPid.get(pid);
    const node: BlockingNode = session
      ? { ...session, blocking: [] }
      : { pid, blocking: [], outsideView: true };
    if (path.has(pid)) {
      node.cycle = true;
      return node;
    }
    const next = new Set(path).add(pid);
    node.blocking = (waiters.get(pid) ?? [])
      .sort((a, b) => a.pid - b.pid)
      .map((w) => build(w.pid, next));
    return node;
  };
  const roots: BlockingNode[] = [];
  const blockers = [...waiters.keys()].sort((a, b) => a - b);
  for (const pid of blockers) {
    const blockedItself = (byPid.get(pid)?.blockedBy.length ?? 0) > 0;
    if (!blockedItself) {
      roots.push(build(pid, new Set()));
    }
  }
  // Whatever is still unplaced waits in a cycle.
  for (const pid of blockers) {
    if (!placed.has(pid)) {
      roots.push(build(pid, new Set()));
    }
  }
  return roots;
}
