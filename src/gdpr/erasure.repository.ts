import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { queryRows, staleRequestIds } from '../database/query-rows.js';

export type ErasureStatus = 'queued' | 'running' | 'completed' | 'failed';

export interface ErasureRow {
  id: string;
  userId: string | null;
  status: ErasureStatus;
  attempts: number;
  error: string | null;
  report: unknown;
  verified: boolean | null;
  createdAt: Date;
  startedAt: Date | null;
  completedAt: Date | null;
}

const COLUMNS = `id::text AS id, user_id::text AS "userId", status, attempts, error, report, verified,
  created_at AS "createdAt", started_at AS "startedAt", completed_at AS "completedAt"`;

/** Erasure requests and the erasure ledger (keyed hashes of erased user ids). */
@Injectable()
export class ErasureRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async create(
    m: EntityManager,
    userId: string,
    subjectHash: Buffer,
    requestedBy: string | null,
    requestId: string | null,
  ): Promise<ErasureRow> {
    const rows: ErasureRow[] = await m.query(
      `INSERT INTO erasure_requests (user_id, subject_hash, requested_by, request_id)
       VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
      [userId, subjectHash, requestedBy, requestId],
    );
    return rows[0];
  }

  async getById(id: string): Promise<ErasureRow | null> {
    const rows: ErasureRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM erasure_requests WHERE id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  /** The request still open (queued, running or failed) for this subject, if any. */
  async openFor(subjectHash: Buffer): Promise<ErasureRow | null> {
    const rows: ErasureRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM erasure_requests
        WHERE subject_hash = $1 AND status IN ('queued', 'running', 'failed')`,
      [subjectHash],
    );
    return rows[0] ?? null;
  }

  async ledgerEntry(
    subjectHash: Buffer,
  ): Promise<{ erasureRequestId: string; erasedAt: Date } | null> {
    const rows: Array<{ erasureRequestId: string; erasedAt: Date }> = await this.dataSource.query(
      `SELECT erasure_request_id::text AS "erasureRequestId", erased_at AS "erasedAt"
         FROM erasure_ledger WHERE subject_hash = $1`,
      [subjectHash],
    );
    return rows[0] ?? null;
  }

  /** Claims a request for processing; null when another worker has it or it is done. */
  async claim(id: string, staleRunningMs: number): Promise<ErasureRow | null> {
    const rows = await queryRows<ErasureRow>(
      this.dataSource.manager,
      `UPDATE erasure_requests SET status = 'running', attempts = attempts + 1, started_at = now(), error = NULL
        WHERE id = $1 AND (status IN ('queued', 'failed')
              OR (status = 'running' AND started_at < now() - make_interval(secs => $2::float8 / 1000)))
        RETURNING ${COLUMNS}`,
      [id, staleRunningMs],
    );
    return rows[0] ?? null;
  }

  async writeLedger(m: EntityManager, subjectHash: Buffer, requestId: string): Promise<void> {
    await m.query(
      `INSERT INTO erasure_ledger (subject_hash, erasure_request_id) VALUES ($1, $2)
       ON CONFLICT (subject_hash) DO NOTHING`,
      [subjectHash, requestId],
    );
  }

  async fail(id: string, error: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE erasure_requests SET status = 'failed', error = $2 WHERE id = $1`,
      [id, error],
    );
  }

  /** Done: the report is stored and the request forgets the user id. */
  async complete(id: string, report: unknown, verified: boolean): Promise<void> {
    await this.dataSource.query(
      `UPDATE erasure_requests SET status = 'completed', user_id = NULL, report = $2::jsonb,
              verified = $3, completed_at = now(), error = NULL
        WHERE id = $1`,
      [id, JSON.stringify(report), verified],
    );
  }

  /** Requests to (re)process: queued, failed by a crash while running, older than `ageMs`. */
  pending(ageMs: number, limit: number): Promise<string[]> {
    // A failed erasure (e.g. leftovers found by verification) is retried a few times.
    return staleRequestIds(this.dataSource.manager, 'erasure_requests', ageMs, limit, 5);
  }

  /** `m`: another database's manager (a restored copy); default the service's. */
  async ledgerHashes(m: EntityManager = this.dataSource.manager): Promise<Buffer[]> {
    const rows: Array<{ h: Buffer }> = await m.query(
      `SELECT subject_hash AS h FROM erasure_ledger`,
    );
    return rows.map((r) => r.h);
  }

  /** User ids in pages, for re-applying the ledger. */
  async userIdsAfter(
    after: string | null,
    limit: number,
    m: EntityManager = this.dataSource.manager,
  ): Promise<string[]> {
    const rows: Array<{ id: string }> = await m.query(
      `SELECT id::text AS id FROM users WHERE ($1::uuid IS NULL OR id > $1::uuid) ORDER BY id LIMIT $2`,
      [after, limit],
    );
    return rows.map((r) => r.id);
  }

  /**
   * Every (table, column) of the public schema that can hold a user id: foreign keys
   * to users(id), and uuid columns named like a user reference — so verification also
   * covers tables no provider declares.
   */
  async userReferenceColumns(): Promise<Array<{ table: string; column: string }>> {
    return this.dataSource.query(
      `SELECT DISTINCT tc.table_name AS "table", kcu.column_name AS "column"
         FROM information_schema.table_constraints tc
         JOIN information_schema.key_column_usage kcu
           ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
         JOIN information_schema.constraint_column_usage ccu
           ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema
        WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'
          AND ccu.table_name = 'users' AND ccu.column_name = 'id'
       UNION
       SELECT c.table_name, c.column_name FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_name = c.table_name AND t.table_schema = c.table_schema AND t.table_type = 'BASE TABLE'
        WHERE c.table_schema = 'public' AND c.data_type IN ('uuid', 'text')
          AND (c.column_name ~ '(^|_)(user|author|owner|subject)_id$' OR (c.table_name = 'users' AND c.column_name = 'id'))
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class k ON k.oid = i.inhrelid
                           WHERE k.relname = c.table_name)
       ORDER BY 1, 2`,
    );
  }

  /** Rows of `table` whose `column` holds the user id (identifiers come from the catalog). */
  async countReferences(
    table: string,
    column: string,
    userId: string,
    m: EntityManager = this.dataSource.manager,
  ): Promise<number> {
    const rows: Array<{ n: string }> = await m.query(
      `SELECT count(*)::text AS n FROM "${table.replace(/"/g, '""')}" WHERE "${column.replace(/"/g, '""')}"::text = $1`,
      [userId],
    );
    return Number(rows[0].n);
  }
}
