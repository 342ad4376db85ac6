import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { paramBinder } from '../database/query-rows.js';

export type AuditEventType =
  | 'user_data_access'
  | 'data_modifications'
  | 'export_requests'
  | 'deletion_requests'
  | 'consent_changes';

export interface AuditRow {
  seq: number;
  occurredAtMs: number;
  eventType: AuditEventType;
  actor: string | null;
  subjectId: string | null;
  resource: string;
  action: string;
  requestId: string | null;
  details: unknown;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  subjectId?: string;
  actor?: string;
  eventType?: AuditEventType;
  from?: string;
  to?: string;
  afterSeq?: number;
  limit: number;
}

const COLUMNS = `seq::int8::text AS seq, (extract(epoch FROM occurred_at) * 1000)::int8::text AS "occurredAtMs",
  event_type AS "eventType", actor, subject_id AS "subjectId", resource, action, request_id AS "requestId",
  details, prev_hash AS "prevHash", hash`;

type RawRow = Omit<AuditRow, 'seq' | 'occurredAtMs'> & { seq: string; occurredAtMs: string };

function toRow(r: RawRow): AuditRow {
  return { ...r, seq: Number(r.seq), occurredAtMs: Number(r.occurredAtMs) };
}

/** `audit_logs` and its chain head. Inserts only: the table refuses anything else. */
@Injectable()
export class AuditRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Locks the chain head for the rest of the caller's transaction (serialises writers). */
  async lockHead(m: EntityManager): Promise<{ seq: number; hash: string }> {
    const rows: Array<{ seq: string; hash: string }> = await m.query(
      `SELECT seq::text AS seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE`,
    );
    return { seq: Number(rows[0].seq), hash: rows[0].hash };
  }

  async append(m: EntityManager, row: AuditRow): Promise<void> {
    await m.query(
      `INSERT INTO audit_logs (seq, occurred_at, event_type, actor, subject_id, resource, action, request_id, details, prev_hash, hash)
       VALUES ($1, to_timestamp($2::float8 / 1000), $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)`,
      [
        row.seq,
        row.occurredAtMs,
        row.eventType,
        row.actor,
        row.subjectId,
        row.resource,
        row.action,
        row.requestId,
        row.details === undefined ? null : JSON.stringify(row.details),
        row.prevHash,
        row.hash,
      ],
    );
    await m.query(`UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1`, [
      row.seq,
      row.hash,
    ]);
  }

  /** Rows in chain order from `afterSeq` (exclusive), on the writer. */
  async chunk(afterSeq: number, limit: number): Promise<AuditRow[]> {
    const rows: RawRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM audit_logs WHERE seq > $1 ORDER BY audit_logs.seq LIMIT $2`,
      [afterSeq, limit],
    );
    return rows.map(toRow);
  }

  async head(): Promise<{ seq: number; hash: string }> {
    const rows: Array<{ seq: string; hash: string }> = await this.dataSource.query(
      `SELECT seq::text AS seq, hash FROM audit_chain_head WHERE id = 1`,
    );
    return { seq: Number(rows[0].seq), hash: rows[0].hash };
  }

  async saveDigest(seq: number, hash: string): Promise<void> {
    await this.dataSource.query(`INSERT INTO audit_digests (seq, hash) VALUES ($1, $2)`, [
      seq,
      hash,
    ]);
  }

  async digests(): Promise<Array<{ seq: number; hash: string }>> {
    const rows: Array<{ seq: string; hash: string }> = await this.dataSource.query(
      `SELECT seq::text AS seq, hash FROM audit_digests ORDER BY id`,
    );
    return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash }));
  }

  async find(q: AuditQuery): Promise<AuditRow[]> {
    const params: unknown[] = [];
    const { bind } = paramBinder(params);
    const where: string[] = [];
    if (q.subjectId) {
      where.push(`subject_id = ${bind(q.subjectId)}`);
    }
    if (q.actor) {
      where.push(`actor = ${bind(q.actor)}`);
    }
    if (q.eventType) {
      where.push(`event_type = ${bind(q.eventType)}`);
    }
    if (q.from) {
      where.push(`occurred_at >= ${bind(q.from)}::timestamptz`);
    }
    if (q.to) {
      where.push(`occurred_at < ${bind(q.to)}::timestamptz`);
    }
    if (q.afterSeq !== undefined) {
      where.push(`seq > ${bind(q.afterSeq)}`);
    }
    const rows: RawRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM audit_logs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY audit_logs.seq LIMIT ${bind(q.limit)}`,
      params,
    );
    return rows.map(toRow);
  }
}
