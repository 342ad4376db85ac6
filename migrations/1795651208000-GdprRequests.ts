import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * GDPR requests: exports (encrypted files with a single-use download token),
 * erasure requests with their verification report, the erasure ledger (a keyed
 * hash of each erased user id, re-applied after a restore), the compliance
 * reports, and the audit log's own data keys (details are sealed with them).
 */
export class GdprRequests1795651208000 implements MigrationInterface {
  name = 'GdprRequests1795651208000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE gdpr_exports (
        id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        format           text        NOT NULL CHECK (format IN ('json', 'csv')),
        status           text        NOT NULL DEFAULT 'queued'
                                     CHECK (status IN ('queued', 'running', 'ready', 'failed', 'expired')),
        requested_by     text,
        request_id       text,
        file_name        text,
        size_bytes       bigint,
        sha256           text,
        key_id           text,
        wrapped_key      bytea,
        item_counts      jsonb,
        token_hash       bytea,
        token_expires_at timestamptz,
        downloaded_at    timestamptz,
        error            text,
        attempts         integer     NOT NULL DEFAULT 0,
        created_at       timestamptz NOT NULL DEFAULT now(),
        started_at       timestamptz,
        completed_at     timestamptz,
        expires_at       timestamptz NOT NULL,
        purged_at        timestamptz
      )`);
    await q.query(`CREATE INDEX gdpr_exports_user_idx ON gdpr_exports (user_id)`);
    await q.query(
      `CREATE INDEX gdpr_exports_pending_idx ON gdpr_exports (status) WHERE status IN ('queued', 'running')`,
    );
    await q.query(
      `CREATE INDEX gdpr_exports_expiry_idx ON gdpr_exports (expires_at) WHERE purged_at IS NULL`,
    );
    // Bookkeeping that outlives a user's erasure (compliance counts), without the user.
    await q.query(`
      CREATE TABLE gdpr_export_log (
        export_id    uuid        PRIMARY KEY,
        format       text        NOT NULL,
        created_at   timestamptz NOT NULL,
        status       text        NOT NULL,
        purged_at    timestamptz
      )`);
    await q.query(`
      CREATE TABLE erasure_requests (
        id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id      uuid,
        subject_hash bytea       NOT NULL,
        status       text        NOT NULL DEFAULT 'queued'
                                 CHECK (status IN ('queued', 'running', 'completed', 'failed')),
        requested_by text,
        request_id   text,
        attempts     integer     NOT NULL DEFAULT 0,
        error        text,
        report       jsonb,
        verified     boolean,
        created_at   timestamptz NOT NULL DEFAULT now(),
        started_at   timestamptz,
        completed_at timestamptz
      )`);
    await q.query(`CREATE INDEX erasure_requests_subject_idx ON erasure_requests (subject_hash)`);
    await q.query(`CREATE UNIQUE INDEX erasure_requests_one_open_uq ON erasure_requests (subject_hash)
      WHERE status IN ('queued', 'running', 'failed')`);
    await q.query(`
      CREATE TABLE erasure_ledger (
        subject_hash       bytea       PRIMARY KEY,
        erasure_request_id uuid        NOT NULL,
        erased_at          timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE compliance_reports (
        month        text        PRIMARY KEY CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
        generated_at timestamptz NOT NULL DEFAULT now(),
        report       jsonb       NOT NULL,
        csv          text        NOT NULL,
        sha256       text        NOT NULL
      )`);
    // Consent history stays immutable; an erasure transaction (SET LOCAL dbu.erasure) may delete.
    await q.query(`
      CREATE OR REPLACE FUNCTION consent_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'consent_events'
           AND (pg_trigger_depth() > 1 OR current_setting('dbu.erasure', true) = 'on') THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION '% is immutable: % is not allowed', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`
      CREATE TABLE audit_data_keys (
        id         integer     PRIMARY KEY,
        key_id     text        NOT NULL,
        wrapped    bytea       NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION consent_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'consent_events' AND pg_trigger_depth() > 1 THEN
          RETURN OLD;
        END IF;
        RAISE EXCEPTION '% is immutable: % is not allowed', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`DROP TABLE audit_data_keys`);
    await q.query(`DROP TABLE compliance_reports`);
    await q.query(`DROP TABLE erasure_ledger`);
    await q.query(`DROP TABLE erasure_requests`);
    await q.query(`DROP TABLE gdpr_export_log`);
    await q.query(`DROP TABLE gdpr_exports`);
  }
}
