import { Injectable } from '@nestjs/common';
import pg from 'pg';
import { queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type {
  BackupKind,
  BackupManifest,
  BackupStatus,
  BackupType,
  BackupVerdict,
  ProviderBackup,
} from './backup.types.js';

export interface BackupRow {
  id: string;
  kind: BackupKind;
  type: BackupType;
  provider: string;
  label: string | null;
  status: BackupStatus;
  verdict: BackupVerdict;
  requestedBy: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  startLsn: string | null;
  stopLsn: string | null;
  sizeBytes: string | null;
  repoSizeBytes: string | null;
  checksum: string | null;
  durationMs: number | null;
  manifest: BackupManifest | null;
  error: string | null;
  /** started_at as PostgreSQL prints it (microseconds): the pagination cursor's key. */
  cursorKey: string;
}

const COLUMNS = `id::text AS id, kind, type, provider, label, status, verdict,
  requested_by AS "requestedBy", started_at AS "startedAt", finished_at AS "finishedAt",
  start_lsn::text AS "startLsn", stop_lsn::text AS "stopLsn", size_bytes::text AS "sizeBytes",
  repo_size_bytes::text AS "repoSizeBytes", checksum, duration_ms AS "durationMs", manifest, error,
  started_at::text AS "cursorKey"`;

const UNIQUE_VIOLATION = '23505';

/** Something `query`-able on one session: a direct client on a replica or the primary. */
type Session = Pick<pg.Client, 'query'>;

/** The backup registry (`backups`, `backup_markers`) and the manifest's queries. */
@Injectable()
export class BackupsRepository {
  constructor(private readonly router: ReadRouterService) {}

  /**
   * Inserts a `running` backup; null when another one is running (the partial unique
   * index `backups_one_running` refuses a second).
   */
  async insertRunning(
    kind: BackupKind,
    type: BackupType,
    provider: string,
    requestedBy: string | null,
  ): Promise<BackupRow | null> {
    try {
      return await this.router.write(async (m) => {
        const rows = await queryRows<BackupRow>(
          m,
          `INSERT INTO backups (kind, type, provider, requested_by) VALUES ($1, $2, $3, $4)
           RETURNING ${COLUMNS}`,
          [kind, type, provider, requestedBy],
        );
        return rows[0];
      });
    } catch (err) {
      const e = err as { code?: string; driverError?: { code?: string } };
      if ((e.code ?? e.driverError?.code) === UNIQUE_VIOLATION) {
        return null;
      }
      throw err;
    }
  }

  async running(): Promise<BackupRow | null> {
    const rows = await this.router.write((m) =>
      queryRows<BackupRow>(m, `SELECT ${COLUMNS} FROM backups WHERE status = 'running'`),
    );
    return rows[0] ?? null;
  }

  /** A marker row, committed on the primary; returns its id. */
  async insertMarker(backupId: string, phase: 'before' | 'after'): Promise<string> {
    const rows = await this.router.write((m) =>
      queryRows<{ id: string }>(
        m,
        `INSERT INTO backup_markers (backup_id, phase) VALUES ($1, $2) RETURNING id::text AS id`,
        [backupId, phase],
      ),
    );
    return rows[0].id;
  }

  async succeed(
    id: string,
    set: ProviderBackup,
    durationMs: number,
    manifest: BackupManifest,
  ): Promise<void> {
    await this.router.write((m) =>
      m.query(
        `UPDATE backups SET status = 'succeeded', label = $2, type = $3, finished_at = now(),
                start_lsn = $4::pg_lsn, stop_lsn = $5::pg_lsn, size_bytes = $6,
                repo_size_bytes = $7, duration_ms = $8, manifest = $9::jsonb, checksum = $10
          WHERE id = $1 AND status = 'running'`,
        [
          id,
          set.label,
          set.type,
          set.startLsn,
          set.stopLsn,
          set.sizeBytes,
          set.repoSizeBytes,
          durationMs,
          JSON.stringify(manifest),
          set.checksum,
        ],
      ),
    );
  }

  /** Marks a running backup failed; `label`: the provider's set, when it was taken. */
  async fail(id: string, error: string, durationMs: number, label: string | null): Promise<void> {
    await this.router.write((m) =>
      m.query(
        `UPDATE backups SET status = 'failed', error = $2, duration_ms = $3,
                label = coalesce($4, label), finished_at = now()
          WHERE id = $1 AND status = 'running'`,
        [id, error, durationMs, label],
      ),
    );
  }

  /** Running rows no process is working on (after a crash): failed, with that reason. */
  async failAbandoned(error: string): Promise<string[]> {
    const rows = await this.router.write((m) =>
      queryRows<{ id: string }>(
        m,
        `UPDATE backups SET status = 'failed', error = $1, finished_at = now()
          WHERE status = 'running' RETURNING id::text AS id`,
        [error],
      ),
    );
    return rows.map((r) => r.id);
  }

  /** Succeeded backups of `provider` whose label is not in `labels` any more: expired. */
  async expireMissing(provider: string, labels: string[]): Promise<string[]> {
    const rows = await this.router.write((m) =>
      queryRows<{ id: string }>(
        m,
        `UPDATE backups SET status = 'expired'
          WHERE provider = $1 AND status = 'succeeded' AND label IS NOT NULL
            AND NOT (label = ANY($2::text[]))
        RETURNING id::text AS id`,
        [provider, labels],
      ),
    );
    return rows.map((r) => r.id);
  }

  async getById(id: string): Promise<BackupRow | null> {
    const rows = await this.router.write((m) =>
      queryRows<BackupRow>(m, `SELECT ${COLUMNS} FROM backups WHERE id = $1`, [id]),
    );
    return rows[0] ?? null;
  }

  /** Newest first, keyset-paginated on (started_at, id). */
  async list(limit: number, after: { startedAt: string; id: string } | null): Promise<BackupRow[]> {
    return this.router.write((m) =>
      after
        ? queryRows<BackupRow>(
            m,
            `SELECT ${COLUMNS} FROM backups
              WHERE (started_at, id) < ($1::timestamptz, $2::uuid)
              ORDER BY started_at DESC, id DESC LIMIT $3`,
            [after.startedAt, after.id, limit],
          )
        : queryRows<BackupRow>(
            m,
            `SELECT ${COLUMNS} FROM backups ORDER BY started_at DESC, id DESC LIMIT $1`,
            [limit],
          ),
    );
  }

  /** The newest succeeded backup (for the last-good metric at boot). */
  async lastSucceeded(): Promise<BackupRow | null> {
    const rows = await this.router.write((m) =>
      queryRows<BackupRow>(
        m,
        `SELECT ${COLUMNS} FROM backups WHERE status = 'succeeded'
          ORDER BY finished_at DESC LIMIT 1`,
      ),
    );
    return rows[0] ?? null;
  }

  // --- the manifest, on one session (a paused replica, or a REPEATABLE READ primary) ---

  async replayLsn(s: Session): Promise<string | null> {
    const r = await s.query<{ lsn: string | null }>(`SELECT pg_last_wal_replay_lsn()::text AS lsn`);
    return r.rows[0].lsn;
  }

  async currentLsn(s: Session): Promise<string> {
    const r = await s.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
    return r.rows[0].lsn;
  }

  async hasReplayed(s: Session, lsn: string): Promise<boolean> {
    const r = await s.query<{ done: boolean }>(
      `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS done`,
      [lsn],
    );
    return r.rows[0].done;
  }

  async pauseReplay(s: Session): Promise<void> {
    await s.query(`SELECT pg_wal_replay_pause()`);
  }

  async replayPaused(s: Session): Promise<boolean> {
    const r = await s.query<{ state: string }>(`SELECT pg_get_wal_replay_pause_state() AS state`);
    return r.rows[0].state === 'paused';
  }

  async resumeReplay(s: Session): Promise<void> {
    await s.query(`SELECT pg_wal_replay_resume()`);
  }

  /** Application tables: every table of schema public (partitions count in their parent). */
  async applicationTables(s: Session): Promise<string[]> {
    const r = await s.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'typeorm_migrations'
        ORDER BY c.relname`,
    );
    return r.rows.map((row) => row.name);
  }

  /**
   * Row count and an order-independent checksum (the sum of each row's 64-bit hash of its
   * text form) of one table. The name comes from the catalog and is quoted as an identifier.
   */
  async tableDigest(s: Session, table: string): Promise<{ rows: number; checksum: string }> {
    const r = await s.query<{ rows: string; checksum: string }>(
      `SELECT count(*)::text AS rows,
              coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS checksum
         FROM public.${pg.escapeIdentifier(table)} t`,
    );
    return { rows: Number(r.rows[0].rows), checksum: r.rows[0].checksum };
  }

  /** Recipes to query by their own embedding: the first `n` by id. */
  async sampleRecipeIds(s: Session, n: number): Promise<string[]> {
    const r = await s.query<{ id: string }>(
      `SELECT id::text AS id FROM recipes WHERE embedding IS NOT NULL ORDER BY id LIMIT $1`,
      [n],
    );
    return r.rows.map((row) => row.id);
  }

  /**
   * Exact nearest neighbours (no index: a sequential scan, ties broken by id). Runs in its
   * own transaction or savepoint so the planner settings stay local.
   */
  async exactNeighbours(
    s: Session,
    recipeId: string,
    limit: number,
    nested: boolean,
  ): Promise<string[]> {
    await s.query(nested ? 'SAVEPOINT exact_knn' : 'BEGIN');
    try {
      await s.query(`SET LOCAL enable_indexscan = off`);
      await s.query(`SET LOCAL enable_bitmapscan = off`);
      const r = await s.query<{ id: string }>(
        `SELECT id::text AS id FROM recipes WHERE embedding IS NOT NULL
          ORDER BY embedding <=> (SELECT embedding FROM recipes WHERE id = $1), id
          LIMIT $2`,
        [recipeId, limit],
      );
      await s.query(nested ? 'RELEASE SAVEPOINT exact_knn' : 'COMMIT');
      return r.rows.map((row) => row.id);
    } catch (err) {
      await s.query(nested ? 'ROLLBACK TO SAVEPOINT exact_knn' : 'ROLLBACK');
      throw err;
    }
  }
}
