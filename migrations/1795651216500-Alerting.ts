import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Alerting: the state of every rule (kept here, not in memory, so a new leader goes on
 * from where the last one stopped), silences, and the notification outbox (written in the
 * same transaction as the state change it announces, delivered afterwards with retries).
 */
export class Alerting1795651216500 implements MigrationInterface {
  name = 'Alerting1795651216500';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE alert_states (
        rule             text             PRIMARY KEY,
        severity         text             NOT NULL,
        state            text             NOT NULL
                                          CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
        value            double precision,
        threshold        double precision NOT NULL,
        comparison       text             NOT NULL,
        pending_since    timestamptz,
        firing_since     timestamptz,
        resolved_at      timestamptz,
        last_notified_at timestamptz,
        evaluated_at     timestamptz      NOT NULL,
        evaluated_by     text             NOT NULL
      )`);

    await q.query(`
      CREATE TABLE alert_silences (
        id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        matchers   jsonb       NOT NULL,
        starts_at  timestamptz NOT NULL,
        ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
        created_by text        NOT NULL,
        comment    text        NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX alert_silences_ends_idx ON alert_silences (ends_at)`);

    await q.query(`
      CREATE TABLE alert_outbox (
        id              bigserial   PRIMARY KEY,
        channel         text        NOT NULL CHECK (channel IN ('email', 'slack')),
        payload         jsonb       NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        attempts        integer     NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_error      text,
        delivered_at    timestamptz
      )`);
    await q.query(
      `CREATE INDEX alert_outbox_due_idx ON alert_outbox (next_attempt_at) WHERE delivered_at IS NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE alert_outbox`);
    await q.query(`DROP TABLE alert_silences`);
    await q.query(`DROP TABLE alert_states`);
  }
}
