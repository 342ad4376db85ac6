import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { queryRows, staleRequestIds } from '../database/query-rows.js';
import type { ExportFormat, ExportResponseDto } from './dto/gdpr.dto.js';

export interface ExportRow {
  id: string;
  userId: string;
  format: ExportFormat;
  status: ExportResponseDto['status'];
  sizeBytes: string | null;
  sha256: string | null;
  keyId: string | null;
  wrappedKey: Buffer | null;
  itemCounts: Record<string, number> | null;
  tokenExpiresAt: Date | null;
  error: string | null;
  attempts: number;
  createdAt: Date;
  completedAt: Date | null;
  expiresAt: Date;
}

const COLUMNS = `id::text AS id, user_id::text AS "userId", format, status, size_bytes::text AS "sizeBytes",
  sha256, key_id AS "keyId", wrapped_key AS "wrappedKey", item_counts AS "itemCounts",
  token_expires_at AS "tokenExpiresAt", error, attempts, created_at AS "createdAt",
  completed_at AS "completedAt", expires_at AS "expiresAt"`;

/** Export requests (`gdpr_exports`) and their user-free log (`gdpr_export_log`). */
@Injectable()
export class ExportRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async create(
    m: EntityManager,
    userId: string,
    format: ExportFormat,
    retentionDays: number,
    requestedBy: string | null,
    requestId: string | null,
  ): Promise<ExportRow> {
    const rows: ExportRow[] = await m.query(
      `INSERT INTO gdpr_exports (user_id, format, requested_by, request_id, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(days => $5))
       RETURNING ${COLUMNS}`,
      [userId, format, requestedBy, requestId, retentionDays],
    );
    await m.query(
      `INSERT INTO gdpr_export_log (export_id, format, created_at, status) VALUES ($1, $2, $3, 'queued')`,
      [rows[0].id, format, rows[0].createdAt],
    );
    return rows[0];
  }

  async getById(id: string): Promise<ExportRow | null> {
    const rows: ExportRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM gdpr_exports WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  /** Claims a queued (or crashed) export for this worker. */
  async claim(id: string, staleRunningMs: number): Promise<ExportRow | null> {
    const rows = await queryRows<ExportRow>(
      this.dataSource.manager,
      `UPDATE gdpr_exports SET status = 'running', attempts = attempts + 1, started_at = now()
        WHERE id = $1 AND (status = 'queued'
              OR (status = 'running' AND started_at < now() - make_interval(secs => $2::float8 / 1000)))
        RETURNING ${COLUMNS}`,
      [id, staleRunningMs],
    );
    return rows[0] ?? null;
  }

  async ready(
    id: string,
    file: { name: string; sizeBytes: number; sha256: string; keyId: string; wrapped: Buffer },
    itemCounts: Record<string, number>,
  ): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      await m.query(
        `UPDATE gdpr_exports SET status = 'ready', file_name = $2, size_bytes = $3, sha256 = $4,
                key_id = $5, wrapped_key = $6, item_counts = $7::jsonb, completed_at = now(), error = NULL
          WHERE id = $1`,
        [
          id,
          file.name,
          file.sizeBytes,
          file.sha256,
          file.keyId,
          file.wrapped,
          JSON.stringify(itemCounts),
        ],
      );
      await m.query(`UPDATE gdpr_export_log SET status = 'ready' WHERE export_id = $1`, [id]);
    });
  }

  async fail(id: string, error: string): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      await m.query(
        `UPDATE gdpr_exports SET status = 'failed', error = $2, completed_at = now() WHERE id = $1`,
        [id, error],
      );
      await m.query(`UPDATE gdpr_export_log SET status = 'failed' WHERE export_id = $1`, [id]);
    });
  }

  /** Replaces the download token (only its hash is stored). */
  async issueToken(id: string, tokenHash: Buffer, ttlSeconds: number): Promise<Date | null> {
    const rows = await queryRows<{ expiresAt: Date }>(
      this.dataSource.manager,
      `UPDATE gdpr_exports SET token_hash = $2, token_expires_at = now() + make_interval(secs => $3)
        WHERE id = $1 AND status = 'ready' RETURNING token_expires_at AS "expiresAt"`,
      [id, tokenHash, ttlSeconds],
    );
    return rows[0]?.expiresAt ?? null;
  }

  /** Uses the token up, atomically: a second use of the same token finds nothing. */
  async consumeToken(m: EntityManager, id: string, tokenHash: Buffer): Promise<ExportRow | null> {
    const rows = await queryRows<ExportRow>(
      m,
      `UPDATE gdpr_exports SET token_hash = NULL, token_expires_at = NULL, downloaded_at = now()
        WHERE id = $1 AND status = 'ready' AND token_hash = $2 AND token_expires_at > now()
          AND expires_at > now()
        RETURNING ${COLUMNS}`,
      [id, tokenHash],
    );
    return rows[0] ?? null;
  }

  /** Ready or failed exports past their retention, not yet purged. */
  async expired(now: Date, limit: number): Promise<Array<{ id: string; userId: string }>> {
    return this.dataSource.query(
      `SELECT id::text AS id, user_id::text AS "userId" FROM gdpr_exports
        WHERE expires_at <= $1 AND purged_at IS NULL AND status IN ('ready', 'failed')
        ORDER BY expires_at LIMIT $2`,
      [now.toISOString(), limit],
    );
  }

  async markPurged(m: EntityManager, id: string): Promise<void> {
    await m.query(
      `UPDATE gdpr_exports SET status = 'expired', purged_at = now(), wrapped_key = NULL,
              token_hash = NULL, token_expires_at = NULL
        WHERE id = $1`,
      [id],
    );
    await m.query(
      `UPDATE gdpr_export_log SET status = 'expired', purged_at = now() WHERE export_id = $1`,
      [id],
    );
  }

  /** Ids of exports whose file may exist (for orphan clean-up). */
  async liveIds(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) {
      return new Set();
    }
    const rows: Array<{ id: string }> = await this.dataSource.query(
      `SELECT id::text AS id FROM gdpr_exports WHERE id = ANY($1::uuid[]) AND purged_at IS NULL`,
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }

  pending(ageMs: number, limit: number): Promise<string[]> {
    return staleRequestIds(this.dataSource.manager, 'gdpr_exports', ageMs, limit);
  }

  /** The user's exports (they are personal data too), in the caller's transaction. */
  listFor(m: EntityManager, userId: string): Promise<ExportRow[]> {
    return m.query(`SELECT ${COLUMNS} FROM gdpr_exports WHERE user_id = $1 ORDER BY created_at`, [
      userId,
    ]);
  }

  async deleteFor(m: EntityManager, userId: string): Promise<string[]> {
    const rows = await queryRows<{ id: string }>(
      m,
      `DELETE FROM gdpr_exports WHERE user_id = $1 RETURNING id::text AS id`,
      [userId],
    );
    return rows.map((r) => r.id);
  }
}
