import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { AlertComparison, AlertSeverity } from '../config/alerting.config.js';
import { AdvisoryLock, LOCK_NAMESPACE } from '../database/locks.js';
import { queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type { AlertState, AlertStateName } from './alert-state.js';

export type AlertChannel = 'email' | 'slack';

export interface AlertStateRow extends AlertState {
  rule: string;
  severity: AlertSeverity;
  threshold: number;
  comparison: AlertComparison;
  evaluatedAt: Date;
  evaluatedBy: string;
}

export interface SilenceMatcher {
  name: string;
  value: string;
}

export interface SilenceRow {
  id: string;
  matchers: SilenceMatcher[];
  startsAt: Date;
  endsAt: Date;
  createdBy: string;
  comment: string;
  createdAt: Date;
}

export interface OutboxRow {
  id: string;
  channel: AlertChannel;
  payload: NotificationPayload;
  attempts: number;
  createdAt: Date;
}

/** One grouped message: every notification of one evaluation routed to one channel. */
export interface NotificationPayload {
  subject: string;
  text: string;
  alerts: Array<{
    alert: string;
    severity: AlertSeverity;
    status: 'firing' | 'resolved';
    value: number | null;
    comparison: AlertComparison;
    threshold: number;
    summary: string;
    since: string;
  }>;
}

const STATE_COLUMNS = `rule, severity, state, value, threshold, comparison,
  pending_since AS "pendingSince", firing_since AS "firingSince", resolved_at AS "resolvedAt",
  last_notified_at AS "lastNotifiedAt", evaluated_at AS "evaluatedAt", evaluated_by AS "evaluatedBy"`;

const SILENCE_COLUMNS = `id::text AS id, matchers, starts_at AS "startsAt", ends_at AS "endsAt",
  created_by AS "createdBy", comment, created_at AS "createdAt"`;

/** The statements of one evaluation, on its transaction. */
export class EvaluationTx {
  constructor(private readonly m: EntityManager) {}

  /** Every stored state, locked until the evaluation commits. */
  async states(): Promise<Map<string, AlertStateRow>> {
    const rows = await queryRows<AlertStateRow>(
      this.m,
      `SELECT ${STATE_COLUMNS} FROM alert_states FOR UPDATE`,
    );
    return new Map(rows.map((r) => [r.rule, r]));
  }

  activeSilences(now: Date): Promise<SilenceRow[]> {
    return queryRows<SilenceRow>(
      this.m,
      `SELECT ${SILENCE_COLUMNS} FROM alert_silences WHERE starts_at <= $1 AND ends_at > $1`,
      [now],
    );
  }

  async saveState(row: AlertStateRow): Promise<void> {
    await this.m.query(
      `INSERT INTO alert_states (rule, severity, state, value, threshold, comparison, pending_since,
         firing_since, resolved_at, last_notified_at, evaluated_at, evaluated_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (rule) DO UPDATE SET severity = $2, state = $3, value = $4, threshold = $5,
         comparison = $6, pending_since = $7, firing_since = $8, resolved_at = $9,
         last_notified_at = $10, evaluated_at = $11, evaluated_by = $12`,
      [
        row.rule,
        row.severity,
        row.state,
        row.value,
        row.threshold,
        row.comparison,
        row.pendingSince,
        row.firingSince,
        row.resolvedAt,
        row.lastNotifiedAt,
        row.evaluatedAt,
        row.evaluatedBy,
      ],
    );
  }

  /** Drops the states of rules no longer configured (removed or renamed). */
  async deleteStatesExcept(rules: string[]): Promise<void> {
    await this.m.query(`DELETE FROM alert_states WHERE NOT (rule = ANY($1::text[]))`, [rules]);
  }

  async enqueue(channel: AlertChannel, payload: NotificationPayload): Promise<void> {
    await this.m.query(`INSERT INTO alert_outbox (channel, payload) VALUES ($1, $2)`, [
      channel,
      JSON.stringify(payload),
    ]);
  }
}

/** Alert states, silences and the notification outbox. */
@Injectable()
export class AlertingRepository {
  constructor(private readonly router: ReadRouterService) {}

  /** One evaluation as one transaction, serialized by a transaction advisory lock. */
  evaluation<T>(fn: (tx: EvaluationTx) => Promise<T>): Promise<T> {
    return this.router.write(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1, $2)', [
        LOCK_NAMESPACE,
        AdvisoryLock.AlertEvaluation,
      ]);
      return fn(new EvaluationTx(m));
    });
  }

  /** Pending and firing alerts, and those resolved within `recentHours`. */
  listAlerts(recentHours: number): Promise<AlertStateRow[]> {
    return this.router.read((m) =>
      queryRows<AlertStateRow>(
        m,
        `SELECT ${STATE_COLUMNS} FROM alert_states
          WHERE state IN ('pending', 'firing')
             OR (state = 'resolved' AND resolved_at > now() - make_interval(hours => $1))
          ORDER BY state = 'firing' DESC, state = 'pending' DESC, rule`,
        [recentHours],
      ),
    );
  }

  async createSilence(s: Omit<SilenceRow, 'id' | 'createdAt'>): Promise<SilenceRow> {
    return this.router.write(async (m) => {
      const rows = await queryRows<SilenceRow>(
        m,
        `INSERT INTO alert_silences (matchers, starts_at, ends_at, created_by, comment)
         VALUES ($1, $2, $3, $4, $5) RETURNING ${SILENCE_COLUMNS}`,
        [JSON.stringify(s.matchers), s.startsAt, s.endsAt, s.createdBy, s.comment],
      );
      return rows[0];
    });
  }

  /** Silences that have not ended (active and future ones). */
  listSilences(): Promise<SilenceRow[]> {
    return this.router.read((m) =>
      queryRows<SilenceRow>(
        m,
        `SELECT ${SILENCE_COLUMNS} FROM alert_silences WHERE ends_at > now() ORDER BY starts_at, id`,
      ),
    );
  }

  /** One silence, ended or not; null when there is none. */
  getSilence(id: string): Promise<SilenceRow | null> {
    return this.router.read(async (m) => {
      const rows = await queryRows<SilenceRow>(
        m,
        `SELECT ${SILENCE_COLUMNS} FROM alert_silences WHERE id = $1`,
        [id],
      );
      return rows[0] ?? null;
    });
  }

  /** Ends a silence now; null when there is no such silence that has not ended. */
  async expireSilence(id: string): Promise<SilenceRow | null> {
    return this.router.write(async (m) => {
      const rows = await queryRows<SilenceRow>(
        m,
        `UPDATE alert_silences SET ends_at = greatest(now(), starts_at + interval '1 microsecond')
          WHERE id = $1 AND ends_at > now() RETURNING ${SILENCE_COLUMNS}`,
        [id],
      );
      return rows[0] ?? null;
    });
  }

  /**
   * Hands a channel's due notifications to `send` one at a time, oldest first, on one transaction whose row locks
   * (SKIP LOCKED) keep any other deliverer off them; each is marked delivered, or its
   * attempt counted with the next one after `backoffMs(attempts)` and the round ended.
   */
  async deliverDue(
    channel: AlertChannel,
    limit: number,
    send: (row: OutboxRow) => Promise<string | null>,
    backoffMs: (attempts: number) => number,
  ): Promise<{ delivered: number; failed: number }> {
    return this.router.write(async (m) => {
      // The channel's oldest undelivered messages, in order; the first one still backing
      // off stops the round, so a channel that comes back gets them in the order queued
      // (a resolution never overtakes its firing).
      const pending = await queryRows<OutboxRow & { notYet: boolean }>(
        m,
        `SELECT id::text AS id, channel, payload, attempts, created_at AS "createdAt",
                next_attempt_at > now() AS "notYet"
           FROM alert_outbox
          WHERE channel = $1 AND delivered_at IS NULL
          ORDER BY alert_outbox.id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [channel, limit],
      );
      const firstNotYet = pending.findIndex((r) => r.notYet);
      const due = firstNotYet === -1 ? pending : pending.slice(0, firstNotYet);
      let delivered = 0;
      let failed = 0;
      for (const row of due) {
        const error = await send(row);
        if (error === null) {
          await m.query(
            `UPDATE alert_outbox SET delivered_at = now(), attempts = attempts + 1 WHERE id = $1`,
            [row.id],
          );
          delivered++;
        } else {
          await m.query(
            `UPDATE alert_outbox SET attempts = attempts + 1, last_error = $2,
               next_attempt_at = now() + make_interval(secs => $3::float8 / 1000) WHERE id = $1`,
            [row.id, error.slice(0, 500), backoffMs(row.attempts + 1)],
          );
          failed++;
          // The channel is down: the rest wait for the next round instead of each waiting
          // out the same timeout while this transaction holds their locks.
          break;
        }
      }
      return { delivered, failed };
    });
  }

  async backlog(): Promise<Record<AlertChannel, number>> {
    const rows = await this.router.write((m) =>
      queryRows<{ channel: AlertChannel; n: number }>(
        m,
        `SELECT channel, count(*)::int AS n FROM alert_outbox WHERE delivered_at IS NULL GROUP BY channel`,
      ),
    );
    const out: Record<AlertChannel, number> = { email: 0, slack: 0 };
    for (const r of rows) {
      out[r.channel] = r.n;
    }
    return out;
  }
}

export type { AlertStateName };
