/** One active session seen in a pg_stat_activity sample. */
export interface ActiveSession {
  waitEventType: string | null;
  waitEvent: string | null;
  /** pg_stat_activity.query_id (PostgreSQL 14+ with compute_query_id); null when absent. */
  queryId: string | null;
}

export interface WaitMinuteRow {
  minute: Date;
  waitEventType: string;
  waitEvent: string;
  /** '0': no query id. */
  queryId: string;
  /** Active sessions summed over the minute's samples. */
  sessions: number;
}

export interface SampleMinuteRow {
  minute: Date;
  samples: number;
}

/**
 * An active session that waits on nothing is running on a CPU (or waiting for one):
 * RDS Performance Insights names that load `CPU` too.
 */
export const CPU = 'CPU';

export function minuteOf(at: Date): Date {
  return new Date(Math.floor(at.getTime() / 60_000) * 60_000);
}

/**
 * Sums samples per minute in memory, so the history gets one row per minute and
 * (wait event, statement) rather than one per second. drain() hands over what was
 * summed; the repository adds it to rows already stored for the same minute.
 */
export class WaitAccumulator {
  private readonly samples = new Map<number, number>();
  private readonly waits = new Map<string, WaitMinuteRow>();

  add(at: Date, sessions: ActiveSession[]): void {
    const minute = minuteOf(at);
    const t = minute.getTime();
    this.samples.set(t, (this.samples.get(t) ?? 0) + 1);
    for (const s of sessions) {
      const type = s.waitEventType ?? CPU;
      const event = s.waitEvent ?? CPU;
      const queryId = s.queryId ?? '0';
      const key = `${t}\u0000${type}\u0000${event}\u0000${queryId}`;
      const row = this.waits.get(key) ?? {
        minute,
        waitEventType: type,
        waitEvent: event,
        queryId,
        sessions: 0,
      };
      row.sessions += 1;
      this.waits.set(key, row);
    }
  }

  get isEmpty(): boolean {
    return this.samples.size === 0;
  }

  drain(): { samples: SampleMinuteRow[]; waits: WaitMinuteRow[] } {
    const samples = [...this.samples].map(([t, n]) => ({ minute: new Date(t), samples: n }));
    const waits = [...this.waits.values()];
    this.samples.clear();
    this.waits.clear();
    return { samples, waits };
  }
}
