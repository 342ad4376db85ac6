import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The backup registry: every backup (its provider label, LSNs, sizes, manifest and the
 * verdict of its validations), the marker rows written around a backup, the validations
 * (restore into a scratch instance + checks) and the point-in-time restores. At most one
 * backup and one validation run at a time (partial unique indexes: the second gets 409).
 */
export class Backups1795651212000 implements MigrationInterface {
  name = 'Backups1795651212000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE backups (
        id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        kind            text        NOT NULL CHECK (kind IN ('daily', 'weekly', 'on-demand', 'base')),
        type            text        NOT NULL CHECK (type IN ('full', 'diff', 'incr', 'snapshot')),
        provider        text        NOT NULL,
        label           text,
        status          text        NOT NULL DEFAULT 'running'
                                    CHECK (status IN ('running', 'succeeded', 'failed', 'expired')),
        verdict         text        NOT NULL DEFAULT 'unvalidated'
                                    CHECK (verdict IN ('unvalidated', 'good', 'bad')),
        requested_by    text,
        started_at      timestamptz NOT NULL DEFAULT now(),
        finished_at     timestamptz,
        start_lsn       pg_lsn,
        stop_lsn        pg_lsn,
        size_bytes      bigint,
        repo_size_bytes bigint,
        duration_ms     integer,
        manifest        jsonb,
        error           text
      )`);
    await q.query(
      `CREATE UNIQUE INDEX backups_one_running ON backups ((true)) WHERE status = 'running'`,
    );
    await q.query(`CREATE INDEX backups_started_idx ON backups (started_at DESC)`);
    await q.query(
      `CREATE UNIQUE INDEX backups_label_idx ON backups (provider, label) WHERE label IS NOT NULL`,
    );

    await q.query(`
      CREATE TABLE backup_markers (
        id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        backup_id  uuid        NOT NULL,
        phase      text        NOT NULL CHECK (phase IN ('before', 'after')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE backup_validations (
        id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        backup_id      uuid        NOT NULL REFERENCES backups (id),
        status         text        NOT NULL DEFAULT 'running'
                                   CHECK (status IN ('running', 'passed', 'failed')),
        requested_by   text,
        started_at     timestamptz NOT NULL DEFAULT now(),
        finished_at    timestamptz,
        scratch_dir    text,
        scratch_port   integer,
        instance_id    text,
        report         jsonb,
        error          text
      )`);
    await q.query(
      `CREATE UNIQUE INDEX backup_validations_one_running ON backup_validations ((true)) WHERE status = 'running'`,
    );
    await q.query(
      `CREATE INDEX backup_validations_backup_idx ON backup_validations (backup_id, started_at DESC)`,
    );

    await q.query(`
      CREATE TABLE restores (
        id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        target_time  timestamptz,
        target_lsn   pg_lsn,
        status       text        NOT NULL DEFAULT 'running'
                                 CHECK (status IN ('running', 'ready', 'failed', 'expired')),
        requested_by text,
        started_at   timestamptz NOT NULL DEFAULT now(),
        ready_at     timestamptz,
        expires_at   timestamptz,
        scratch_dir  text,
        host         text,
        port         integer,
        instance_id  text,
        error        text,
        CHECK (target_time IS NOT NULL OR target_lsn IS NOT NULL)
      )`);
    await q.query(`CREATE INDEX restores_status_idx ON restores (status, expires_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE restores`);
    await q.query(`DROP TABLE backup_validations`);
    await q.query(`DROP TABLE backup_markers`);
    await q.query(`DROP TABLE backups`);
  }
}
