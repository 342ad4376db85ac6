import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import type {
  BackupManifest,
  BackupStatus,
  BackupVerdict,
  RestoreStatus,
  ValidationStatus,
} from './backup.types.js';

export interface BackupRow {
  id: string;
  label: string | null;
  status: BackupStatus;
  verdict: BackupVerdict;
  stopLsn: string | null;
  finishedAt: Date | null;
  manifest: BackupManifest | null;
}

export interface ValidationRow {
  id: string;
  backupId: string;
  status: ValidationStatus;
  startedAt: Date;
  finishedAt: Date | null;
  scratchDir: string | null;
  scratchPort: number | null;
  instanceId: string | null;
  report: unknown;
  error: string | null;
}

export interface RestoreRow {
  id: string;
  targetTime: Date | null;
  targetLsn: string | null;
  status: RestoreStatus;
  startedAt: Date;
  readyAt: Date | null;
  expiresAt: Date | null;
  scratchDir: string | null;
  host: string | null;
  port: number | null;
  instanceId: string | null;
  error: string | null;
}

const BACKUP = `id::text AS id, label, status, verdict, stop_lsn::text AS "stopLsn",
  finished_at AS "finishedAt", manifest`;
const VALIDATION = `id::text AS id, backup_id::text AS "backupId", status, started_at AS "startedAt",
  finished_at AS "finishedAt", scratch_dir AS "scratchDir", scratch_port AS "scratchPort",
  instance_id AS "instanceId", report, error`;
const RESTORE = `id::text AS id, target_time AS "targetTime", target_lsn::text AS "targetLsn", status,
  started_at AS "startedAt", ready_at AS "readyAt", expires_at AS "expiresAt", scratch_dir AS "scratchDir",
  host, port, instance_id AS "instanceId", error`;

/** Validations and restores, and the reads/verdict of the backups they act on. */
@Injectable()
export class ValidationRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async backup(id: string): Promise<BackupRow | null> {
    const rows: BackupRow[] = await this.dataSource.query(
      `SELECT ${BACKUP} FROM backups WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  async newestSucceededBackup(): Promise<BackupRow | null> {
    const rows: BackupRow[] = await this.dataSource.query(
      `SELECT ${BACKUP} FROM backups WHERE status = 'succeeded' AND label IS NOT NULL
        ORDER BY finished_at DESC NULLS LAST LIMIT 1`,
    );
    return rows[0] ?? null;
  }

  async setVerdict(backupId: string, verdict: BackupVerdict): Promise<void> {
    await this.dataSource.query(`UPDATE backups SET verdict = $2 WHERE id = $1`, [
      backupId,
      verdict,
    ]);
  }

  async markerExists(
    db: { query(sql: string, p: unknown[]): Promise<{ rows: unknown[] }> },
    id: string,
  ): Promise<boolean> {
    const res = await db.query(`SELECT 1 FROM backup_markers WHERE id = $1`, [id]);
    return res.rows.length > 0;
  }

  async running(): Promise<ValidationRow | null> {
    const rows: ValidationRow[] = await this.dataSource.query(
      `SELECT ${VALIDATION} FROM backup_validations WHERE status = 'running'`,
    );
    return rows[0] ?? null;
  }

  /** null when another validation is running (the partial unique index). */
  async start(
    backupId: string,
    instanceId: string,
    requestedBy: string | null,
  ): Promise<ValidationRow | null> {
    try {
      const rows: ValidationRow[] = await this.dataSource.query(
        `INSERT INTO backup_validations (backup_id, instance_id, requested_by)
         VALUES ($1, $2, $3) RETURNING ${VALIDATION}`,
        [backupId, instanceId, requestedBy],
      );
      return rows[0];
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        return null;
      }
      throw err;
    }
  }

  async setScratch(id: string, dir: string, port: number | null): Promise<void> {
    await this.dataSource.query(
      `UPDATE backup_validations SET scratch_dir = $2, scratch_port = $3 WHERE id = $1`,
      [id, dir, port],
    );
  }

  async finish(
    id: string,
    status: 'passed' | 'failed',
    report: unknown,
    error: string | null,
  ): Promise<void> {
    await this.dataSource.query(
      `UPDATE backup_validations SET status = $2, report = $3, error = $4, finished_at = now()
        WHERE id = $1`,
      [id, status, JSON.stringify(report), error],
    );
  }

  async validation(id: string): Promise<ValidationRow | null> {
    const rows: ValidationRow[] = await this.dataSource.query(
      `SELECT ${VALIDATION} FROM backup_validations WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  async lastPassed(): Promise<Date | null> {
    const rows: Array<{ at: Date | null }> = await this.dataSource.query(
      `SELECT max(finished_at) AS at FROM backup_validations WHERE status = 'passed'`,
    );
    return rows[0]?.at ?? null;
  }

  async runningValidations(): Promise<ValidationRow[]> {
    return this.dataSource.query(
      `SELECT ${VALIDATION} FROM backup_validations WHERE status = 'running'`,
    );
  }

  async failOrphanValidation(id: string, error: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE backup_validations SET status = 'failed', error = $2, finished_at = now()
        WHERE id = $1 AND status = 'running'`,
      [id, error],
    );
  }

  // --- restores -------------------------------------------------------------------------

  async createRestore(
    target: { time: Date | null; lsn: string | null },
    instanceId: string,
    requestedBy: string | null,
  ): Promise<RestoreRow> {
    const rows: RestoreRow[] = await this.dataSource.query(
      `INSERT INTO restores (target_time, target_lsn, instance_id, requested_by)
       VALUES ($1, $2, $3, $4) RETURNING ${RESTORE}`,
      [target.time, target.lsn, instanceId, requestedBy],
    );
    return rows[0];
  }

  async restore(id: string): Promise<RestoreRow | null> {
    const rows: RestoreRow[] = await this.dataSource.query(
      `SELECT ${RESTORE} FROM restores WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  async setRestoreScratch(
    id: string,
    dir: string,
    port: number | null,
    host: string | null,
  ): Promise<void> {
    await this.dataSource.query(
      `UPDATE restores SET scratch_dir = $2, port = $3, host = $4 WHERE id = $1`,
      [id, dir, port, host],
    );
  }

  async restoreReady(id: string, readyAt: Date, ttlMinutes: number): Promise<void> {
    await this.dataSource.query(
      `UPDATE restores SET status = 'ready', ready_at = $2,
              expires_at = $2::timestamptz + make_interval(mins => $3) WHERE id = $1`,
      [id, readyAt, ttlMinutes],
    );
  }

  async restoreFailed(id: string, error: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE restores SET status = 'failed', error = $2 WHERE id = $1 AND status IN ('running', 'ready')`,
      [id, error],
    );
  }

  async restoreExpired(id: string): Promise<void> {
    await this.dataSource.query(`UPDATE restores SET status = 'expired' WHERE id = $1`, [id]);
  }

  async expiredRestores(): Promise<RestoreRow[]> {
    return this.dataSource.query(
      `SELECT ${RESTORE} FROM restores WHERE status = 'ready' AND expires_at <= now()`,
    );
  }

  async runningRestores(): Promise<RestoreRow[]> {
    return this.dataSource.query(`SELECT ${RESTORE} FROM restores WHERE status = 'running'`);
  }

  /** Folders that belong to live rows (ready restores, running work of live instances). */
  async liveScratchDirs(): Promise<string[]> {
    const rows: Array<{ d: string }> = await this.dataSource.query(
      `SELECT scratch_dir AS d FROM restores WHERE status IN ('running', 'ready') AND scratch_dir IS NOT NULL
       UNION SELECT scratch_dir FROM backup_validations WHERE status = 'running' AND scratch_dir IS NOT NULL`,
    );
    return rows.map((r) => r.d);
  }
}
