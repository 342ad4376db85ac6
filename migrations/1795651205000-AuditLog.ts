import type { MigrationInterface, QueryRunner } from 'typeorm';
import { monthPartition } from '../src/audit/audit-partitions.js';

/**
 * The audit log (spec table name `audit_logs`): append-only, enforced by triggers
 * (UPDATE, DELETE and TRUNCATE raise), hash-chained (`prev_hash` → `hash`), partitioned
 * by month so retention drops whole partitions. `audit_chain_head` serialises writers
 * (one row, locked in the writing transaction). `audit_digests` keeps the published
 * (head seq, hash) checkpoints.
 */
export class AuditLog1795651205000 implements MigrationInterface {
  name = 'AuditLog1795651205000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_chain_head (
        id   smallint PRIMARY KEY CHECK (id = 1),
        seq  bigint   NOT NULL,
        hash text     NOT NULL
      )`);
    await q.query(`INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64))`);
    await q.query(`
      CREATE TABLE audit_logs (
        seq         bigint      NOT NULL,
        occurred_at timestamptz NOT NULL,
        event_type  text        NOT NULL CHECK (event_type IN
                      ('user_data_access', 'data_modifications', 'export_requests', 'deletion_requests', 'consent_changes')),
        actor       text,
        subject_id  text,
        resource    text        NOT NULL,
        action      text        NOT NULL,
        request_id  text,
        details     jsonb,
        prev_hash   text        NOT NULL,
        hash        text        NOT NULL,
        PRIMARY KEY (seq, occurred_at)
      ) PARTITION BY RANGE (occurred_at)`);
    await q.query(`CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT`);
    // This month and the next two; the daily maintenance job keeps two months ahead.
    const now = new Date();
    for (let i = 0; i <= 2; i++) {
      const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
      const p = monthPartition(d.getUTCFullYear(), d.getUTCMonth() + 1);
      await q.query(
        `CREATE TABLE ${p.name} PARTITION OF audit_logs FOR VALUES FROM ('${p.from}') TO ('${p.to}')`,
      );
    }
    await q.query(`CREATE INDEX audit_logs_subject_idx ON audit_logs (subject_id, seq)`);
    await q.query(`CREATE INDEX audit_logs_occurred_idx ON audit_logs (occurred_at)`);
    await q.query(`
      CREATE FUNCTION audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_logs is append-only: % is not allowed', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`
      CREATE TRIGGER audit_logs_no_change BEFORE UPDATE OR DELETE ON audit_logs
        FOR EACH ROW EXECUTE FUNCTION audit_logs_append_only()`);
    await q.query(`
      CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
        FOR EACH STATEMENT EXECUTE FUNCTION audit_logs_append_only()`);
    // Defence in depth: the owning (application) role gives up its own UPDATE/DELETE rights.
    await q.query(`REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM CURRENT_USER`);
    await q.query(`
      CREATE TABLE audit_digests (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        seq         bigint      NOT NULL,
        hash        text        NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE audit_digests`);
    await q.query(`DROP TABLE audit_logs`);
    await q.query(`DROP FUNCTION audit_logs_append_only()`);
    await q.query(`DROP TABLE audit_chain_head`);
  }
}
