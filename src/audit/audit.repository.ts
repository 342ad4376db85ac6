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

const CHECKPOINT_COLUMNS = `partition, rows_dropped::text AS "rowsDropped",
  sealed_seq::text AS "sealedSeq", sealed_hash AS "sealedHash", dropped_at AS "droppedAt"`;

type RawCheckpoint = Omit<RetentionCheckpoint, 'rowsDropped' | 'sealedSeq' | 'droppedAt'> & {
  rowsDropped: string;
  sealedSeq: string;
  droppedAt: Date;
};

function toCheckpoint(r: RawCheckpoint): RetentionCheckpoint {
  return {
    ...r,
    rowsDropped: Number(r.rowsDropped),
    sealedSeq: Number(r.sealedSeq),
    droppedAt: r.droppedAt.toISOString(),
  };
}

/** A point of the chain: the row `seq` has `hash` (0 / genesis hash: before the first row). */
export interface ChainPoint {
  seq: number;
  hash: string;
}

/** Written by `audit_drop_partition` (the owner's function) when a partition is dropped. */
export interface RetentionCheckpoint {
  partition: string;
  rowsDropped: number;
  /** Every row up to here is gone; the next row must link to `sealedHash`. */
  sealedSeq: number;
  sealedHash: string;
  droppedAt: string;
}

export interface VerificationCheckpoint extends ChainPoint {
  verifiedAt: string;
}

/**
 * `audit_logs` and its companions. The service's role may only read and append: the
 * head moves by the insert itself (trigger), partitions come and go through the
 * owner's functions.
 */
@Injectable()
export class AuditRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /** Locks the chain head for the rest of the caller's transaction (serialises writers). */
  async lockHead(m: EntityManager): Promise<ChainPoint & { occurredAtMs: number | null }> {
    const rows: Array<{ seq: string; hash: string; occurredAtMs: string | null }> = await m.query(
      `SELECT seq::text AS seq, hash, (extract(epoch FROM occurred_at) * 1000)::int8::text AS "occurredAtMs"
         FROM audit_lock_chain_head()`,
    );
    const r = rows[0];
    return {
      seq: Number(r.seq),
      hash: r.hash,
      occurredAtMs: r.occurredAtMs === null ? null : Number(r.occurredAtMs),
    };
  }

  /**
   * The rows must extend the locked head, in chain order; the database checks and moves
   * the head with each (row triggers fire in VALUES order). One statement for all.
   */
  async appendMany(m: EntityManager, rows: readonly AuditRow[]): Promise<void> {
    const params: unknown[] = [];
    const values = rows.map((row) => {
      const n = params.length;
      params.push(
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
      );
      return `($${n + 1}::int8, to_timestamp($${n + 2}::float8 / 1000), $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6}, $${n + 7}, $${n + 8}, $${n + 9}::jsonb, $${n + 10}, $${n + 11})`;
    });
    await m.query(
      `INSERT INTO audit_logs (seq, occurred_at, event_type, actor, subject_id, resource, action, request_id, details, prev_hash, hash)
       VALUES ${values.join(', ')}`,
      params,
    );
  }

  /** Rows in chain order after `afterSeq`, up to `maxSeq`, on the writer. */
  async chunk(afterSeq: number, maxSeq: number, limit: number): Promise<AuditRow[]> {
    const rows: RawRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM audit_logs WHERE seq > $1 AND seq <= $2 ORDER BY audit_logs.seq LIMIT $3`,
      [afterSeq, maxSeq, limit],
    );
    return rows.map(toRow);
  }

  async head(): Promise<ChainPoint> {
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

  /** Published digests after `afterSeq`. */
  async digests(afterSeq: number): Promise<ChainPoint[]> {
    const rows: Array<{ seq: string; hash: string }> = await this.dataSource.query(
      `SELECT seq::text AS seq, hash FROM audit_digests WHERE seq > $1 ORDER BY id`,
      [afterSeq],
    );
    return rows.map((r) => ({ seq: Number(r.seq), hash: r.hash }));
  }

  /** The newest retention checkpoint: where the retained chain starts. */
  async retentionSeal(): Promise<RetentionCheckpoint | null> {
    const rows: RawCheckpoint[] = await this.dataSource.query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_retention_checkpoints ORDER BY id DESC LIMIT 1`,
    );
    return rows[0] ? toCheckpoint(rows[0]) : null;
  }

  /** The furthest point a valid verification reached. */
  async lastVerification(): Promise<VerificationCheckpoint | null> {
    const rows: Array<{ seq: string; hash: string; verifiedAt: Date }> =
      await this.dataSource.query(
        `SELECT seq::text AS seq, hash, verified_at AS "verifiedAt"
           FROM audit_verifications ORDER BY seq DESC, id DESC LIMIT 1`,
      );
    const r = rows[0];
    return r
      ? { seq: Number(r.seq), hash: r.hash, verifiedAt: new Date(r.verifiedAt).toISOString() }
      : null;
  }

  async saveVerification(v: {
    mode: 'full' | 'incremental';
    fromSeq: number;
    to: ChainPoint;
    rowsChecked: number;
  }): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO audit_verifications (mode, from_seq, seq, hash, rows_checked) VALUES ($1, $2, $3, $4, $5)`,
      [v.mode, v.fromSeq, v.to.seq, v.to.hash, v.rowsChecked],
    );
  }

  /** This month's and the next `monthsAhead` monthly partitions; returns those it made. */
  async createPartitions(monthsAhead: number): Promise<string[]> {
    const rows: Array<{ name: string }> = await this.dataSource.query(
      `SELECT name FROM audit_create_partitions($1) AS name`,
      [monthsAhead],
    );
    return rows.map((r) => r.name);
  }

  /** Monthly partitions, oldest first, and the database's clock (which retention goes by). */
  async partitions(): Promise<{ names: string[]; now: Date }> {
    const rows: Array<{ name: string; now: Date }> = await this.dataSource.query(
      `SELECT c.relname AS name, now() AS now
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_logs'::regclass ORDER BY c.relname`,
    );
    return { names: rows.map((r) => r.name), now: rows[0] ? new Date(rows[0].now) : new Date() };
  }

  /**
   * Drops one expired partition through the owner's function, which refuses a partition
   * younger than `retentionYears` (never under 7) and seals what it drops.
   */
  async dropPartition(name: string, retentionYears: number): Promise<RetentionCheckpoint> {
    const rows: RawCheckpoint[] = await this.dataSource.query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_drop_partition($1, $2)`,
      [name, retentionYears],
    );
    return toCheckpoint(rows[0]);
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
