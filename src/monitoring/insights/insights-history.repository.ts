import { Injectable } from '@nestjs/common';
import { ReadRouterService } from '../../database/read-router.service.js';
import type { StatementDelta } from './statement-deltas.js';
import type { SampleMinuteRow, WaitMinuteRow } from './wait-accumulator.js';

export interface TopSqlRow {
  queryId: string;
  query: string | null;
  calls: number;
  totalTimeMs: number;
  meanTimeMs: number;
  rows: number;
  sharedBlksHit: number;
  sharedBlksRead: number;
}

export interface WaitRow {
  waitEventType: string;
  waitEvent: string;
  queryId: string | null;
  query: string | null;
  sessions: number;
}

/** The insights history: written by the insights leader, read by every instance. */
@Injectable()
export class InsightsHistoryRepository {
  constructor(private readonly router: ReadRouterService) {}

  /** One snapshot's deltas and the statements' texts, in one transaction. */
  saveStatementDeltas(
    capturedAt: Date,
    intervalSeconds: number,
    deltas: StatementDelta[],
  ): Promise<void> {
    if (deltas.length === 0) {
      return Promise.resolve();
    }
    return this.router.write(async (m) => {
      await m.query(
        `INSERT INTO insights_statements (queryid, query, last_seen)
         SELECT q, t, $3 FROM unnest($1::bigint[], $2::text[]) AS u(q, t)
         ON CONFLICT (queryid) DO UPDATE SET query = EXCLUDED.query, last_seen = EXCLUDED.last_seen`,
        [deltas.map((d) => d.queryid), deltas.map((d) => d.query), capturedAt],
      );
      await m.query(
        `INSERT INTO insights_statement_deltas
           (captured_at, interval_seconds, queryid, calls, total_exec_ms, rows,
            shared_blks_hit, shared_blks_read)
         SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::float8[], $6::bigint[],
                                      $7::bigint[], $8::bigint[])
         ON CONFLICT (captured_at, queryid) DO NOTHING`,
        [
          capturedAt,
          intervalSeconds,
          deltas.map((d) => d.queryid),
          deltas.map((d) => d.calls),
          deltas.map((d) => d.totalExecMs),
          deltas.map((d) => d.rows),
          deltas.map((d) => d.sharedBlksHit),
          deltas.map((d) => d.sharedBlksRead),
        ],
      );
    });
  }

  /** Adds summed samples to the minutes' rows (a minute may be flushed more than once). */
  addWaitSamples(samples: SampleMinuteRow[], waits: WaitMinuteRow[]): Promise<void> {
    if (samples.length === 0) {
      return Promise.resolve();
    }
    return this.router.write(async (m) => {
      await m.query(
        `INSERT INTO insights_sample_minutes (minute, samples)
         SELECT * FROM unnest($1::timestamptz[], $2::int[])
         ON CONFLICT (minute) DO UPDATE
           SET samples = insights_sample_minutes.samples + EXCLUDED.samples`,
        [samples.map((s) => s.minute), samples.map((s) => s.samples)],
      );
      if (waits.length > 0) {
        await m.query(
          `INSERT INTO insights_wait_minutes (minute, wait_event_type, wait_event, query_id, sessions)
           SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
           ON CONFLICT (minute, wait_event_type, wait_event, query_id) DO UPDATE
             SET sessions = insights_wait_minutes.sessions + EXCLUDED.sessions`,
          [
            waits.map((w) => w.minute),
            waits.map((w) => w.waitEventType),
            waits.map((w) => w.waitEvent),
            waits.map((w) => w.queryId),
            waits.map((w) => w.sessions),
          ],
        );
      }
    });
  }

  /** Deletes history older than `before`; the counts per table. */
  prune(before: Date): Promise<Record<string, number>> {
    return this.router.write(async (m) => {
      const deleted: Record<string, number> = {};
      for (const [table, column] of [
        ['insights_statement_deltas', 'captured_at'],
        ['insights_statements', 'last_seen'],
        ['insights_wait_minutes', 'minute'],
        ['insights_sample_minutes', 'minute'],
      ] as const) {
        const res: [unknown[], number] = await m.query(
          `DELETE FROM ${table} WHERE ${column} < $1`,
          [before],
        );
        deleted[table] = res[1];
      }
      return deleted;
    });
  }

  /**
   * Statements by time spent in snapshots taken inside (from, to]: each snapshot holds
   * the work since the previous one, so the window's resolution is the snapshot interval.
   */
  topSql(from: Date, to: Date, limit: number): Promise<TopSqlRow[]> {
    return this.router.read(async (m) => {
      const rows: Array<Record<string, string | number | null>> = await m.query(
        `SELECT d.queryid::text AS queryid, s.query,
                sum(d.calls)::bigint AS calls, sum(d.total_exec_ms) AS total_ms,
                sum(d.rows)::bigint AS rows, sum(d.shared_blks_hit)::bigint AS hit,
                sum(d.shared_blks_read)::bigint AS read
           FROM insights_statement_deltas d
           LEFT JOIN insights_statements s ON s.queryid = d.queryid
          WHERE d.captured_at > $1 AND d.captured_at <= $2
          GROUP BY d.queryid, s.query
          ORDER BY total_ms DESC, calls DESC
          LIMIT $3`,
        [from, to, limit],
      );
      return rows.map((r) => {
        const calls = Number(r.calls);
        const total = Number(r.total_ms);
        return {
          queryId: String(r.queryid),
          query: r.query === null ? null : String(r.query),
          calls,
          totalTimeMs: total,
          meanTimeMs: calls > 0 ? total / calls : 0,
          rows: Number(r.rows),
          sharedBlksHit: Number(r.hit),
          sharedBlksRead: Number(r.read),
        };
      });
    });
  }

  /**
   * Samples taken and active sessions counted in the minutes that overlap [from, to],
   * per wait event and statement.
   */
  waits(from: Date, to: Date): Promise<{ samples: number; rows: WaitRow[] }> {
    return this.router.read(async (m) => {
      const overlap = (col: string): string =>
        `${col} > $1::timestamptz - interval '1 minute' AND ${col} <= $2`;
      const samples: Array<{ n: string | null }> = await m.query(
        `SELECT sum(samples)::bigint AS n FROM insights_sample_minutes WHERE ${overlap('minute')}`,
        [from, to],
      );
      const rows: Array<Record<string, string | null>> = await m.query(
        `SELECT w.wait_event_type, w.wait_event, w.query_id::text AS query_id, s.query,
                sum(w.sessions)::bigint AS sessions
           FROM insights_wait_minutes w
           LEFT JOIN insights_statements s ON s.queryid = w.query_id
          WHERE ${overlap('w.minute')}
          GROUP BY 1, 2, 3, 4`,
        [from, to],
      );
      return {
        samples: Number(samples[0]?.n ?? 0),
        rows: rows.map((r) => ({
          waitEventType: String(r.wait_event_type),
          waitEvent: String(r.wait_event),
          queryId: r.query_id === '0' ? null : r.query_id,
          query: r.query,
          sessions: Number(r.sessions),
        })),
      };
    });
  }
}
