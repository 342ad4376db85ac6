import type { WaitRow } from './insights-history.repository.js';

export interface WaitLoad {
  waitEventType: string;
  waitEvent?: string;
  aas: number;
}

export interface StatementLoad {
  queryId: string | null;
  query: string | null;
  aas: number;
  waits: WaitLoad[];
}

export interface LoadBreakdown {
  averageActiveSessions: number;
  byWaitEventType: WaitLoad[];
  byWaitEvent: WaitLoad[];
  byStatement: StatementLoad[];
}

const byLoad = (a: { aas: number }, b: { aas: number }): number => b.aas - a.aas;

/**
 * Database load as average active sessions: the active sessions counted in every
 * sample, divided by the number of samples. An AAS of 2 by Lock/transactionid means
 * that on average two sessions were waiting for another transaction's row lock.
 */
export function loadBreakdown(samples: number, rows: WaitRow[], statements: number): LoadBreakdown {
  const aas = (sessions: number): number => (samples > 0 ? sessions / samples : 0);
  const types = new Map<string, number>();
  const events = new Map<string, { type: string; event: string; sessions: number }>();
  const perStatement = new Map<
    string,
    {
      queryId: string | null;
      query: string | null;
      sessions: number;
      waits: Map<string, WaitLoad & { sessions: number }>;
    }
  >();
  let total = 0;
  for (const r of rows) {
    total += r.sessions;
    types.set(r.waitEventType, (types.get(r.waitEventType) ?? 0) + r.sessions);
    const eventKey = `${r.waitEventType}\u0000${r.waitEvent}`;
    const e = events.get(eventKey) ?? { type: r.waitEventType, event: r.waitEvent, sessions: 0 };
    e.sessions += r.sessions;
    events.set(eventKey, e);
    const qKey = r.queryId ?? '';
    const s = perStatement.get(qKey) ?? {
      queryId: r.queryId,
      query: r.query,
      sessions: 0,
      waits: new Map(),
    };
    s.sessions += r.sessions;
    s.query ??= r.query;
    const w = s.waits.get(eventKey) ?? {
      waitEventType: r.waitEventType,
      waitEvent: r.waitEvent,
      aas: 0,
      sessions: 0,
    };
    w.sessions += r.sessions;
    s.waits.set(eventKey, w);
    perStatement.set(qKey, s);
  }
  return {
    averageActiveSessions: aas(total),
    byWaitEventType: [...types]
      .map(([waitEventType, n]) => ({ waitEventType, aas: aas(n) }))
      .sort(byLoad),
    byWaitEvent: [...events.values()]
      .map((e) => ({ waitEventType: e.type, waitEvent: e.event, aas: aas(e.sessions) }))
      .sort(byLoad),
    byStatement: [...perStatement.values()]
      .map((s) => ({
        queryId: s.queryId,
        query: s.query,
        aas: aas(s.sessions),
        waits: [...s.waits.values()]
          .map((w) => ({
            waitEventType: w.waitEventType,
            waitEvent: w.waitEvent,
            aas: aas(w.sessions),
          }))
          .sort(byLoad),
      }))
      .sort(byLoad)
      .slice(0, statements),
  };
}
