import { Injectable, Logger } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { DataChange, DataChangeSink } from '../common/data-change.js';
import { RequestContextStore } from '../common/request-context.js';
import { chainHash, GENESIS_HASH } from './audit-hash.js';
import { AuditEventType, AuditRepository, AuditRow } from './audit.repository.js';

export interface AuditEvent {
  eventType: AuditEventType;
  resource: string;
  action: string;
  subjectId?: string | null;
  actor?: string | null;
  /** Never personal data in clear (names of fields, ids, counts). */
  details?: unknown;
}

export interface VerifyReport {
  valid: boolean;
  rowsChecked: number;
  head: { seq: number; hash: string };
  firstBroken: { seq: number; reason: string } | null;
  digestsChecked: number;
}

const VERIFY_CHUNK = 1000;

/**
 * The hash-chained audit log. `record` runs inside the caller's transaction: it
 * locks the chain head, appends the row whose hash covers the previous hash, and
 * moves the head — so a change and its audit row commit (or roll back) together,
 * and concurrent writers cannot fork the chain.
 */
@Injectable()
export class AuditService implements DataChangeSink {
  private readonly logger = new Logger(AuditService.name);

  constructor(private readonly audit: AuditRepository) {}

  async append(m: EntityManager, event: AuditEvent): Promise<AuditRow> {
    const head = await this.audit.lockHead(m);
    const ctx = RequestContextStore.get();
    const fields = {
      seq: head.seq + 1,
      occurredAtMs: Date.now(),
      eventType: event.eventType,
      actor: event.actor ?? ctx?.keyId ?? null,
      subjectId: event.subjectId ?? null,
      resource: event.resource,
      action: event.action,
      requestId: ctx?.requestId ?? null,
      details: event.details ?? null,
      prevHash: head.hash,
    };
    const row: AuditRow = { ...fields, hash: chainHash(fields) };
    await this.audit.append(m, row);
    return row;
  }

  /** DataChangeSink: every data modification recorded by a feature module. */
  async record(m: EntityManager, change: DataChange): Promise<void> {
    await this.append(m, {
      eventType: 'data_modifications',
      resource: `${change.entity}:${change.entityId}`,
      action: change.action,
      actor: change.actor ?? null,
      details: change.fields ? { fields: change.fields } : null,
    });
  }

  /** Walks the whole chain; reports the first row whose link or hash does not hold. */
  async verify(): Promise<VerifyReport> {
    const head = await this.audit.head();
    const digests = new Map((await this.audit.digests()).map((d) => [d.seq, d.hash]));
    let prevHash = GENESIS_HASH;
    let expectedSeq = 1;
    let checked = 0;
    let digestsChecked = 0;
    const broken = (seq: number, reason: string): VerifyReport => ({
      valid: false,
      rowsChecked: checked,
      head,
      firstBroken: { seq, reason },
      digestsChecked,
    });
    for (;;) {
      const rows = await this.audit.chunk(expectedSeq - 1, VERIFY_CHUNK);
      for (const row of rows) {
        if (row.seq !== expectedSeq) {
          return broken(expectedSeq, `row ${expectedSeq} is missing (next is ${row.seq})`);
        }
        if (row.prevHash !== prevHash) {
          return broken(row.seq, 'prev_hash does not match the previous row');
        }
        const { hash, ...fields } = row;
        if (chainHash(fields) !== hash) {
          return broken(row.seq, 'hash does not match the row contents');
        }
        const digest = digests.get(row.seq);
        if (digest !== undefined) {
          digestsChecked += 1;
          if (digest !== hash) {
            return broken(row.seq, 'hash differs from the published digest');
          }
        }
        prevHash = hash;
        expectedSeq += 1;
        checked += 1;
      }
      if (rows.length < VERIFY_CHUNK) {
        break;
      }
    }
    if (checked !== head.seq) {
      return broken(checked + 1, `chain head says ${head.seq} rows, found ${checked}`);
    }
    if (head.seq > 0 && head.hash !== prevHash) {
      return broken(head.seq, 'chain head hash differs from the last row');
    }
    return { valid: true, rowsChecked: checked, head, firstBroken: null, digestsChecked };
  }

  /**
   * Publishes the head (seq, hash): stored, and logged so it leaves the database. A
   * later rewrite of the whole chain no longer matches published digests.
   */
  async publishDigest(): Promise<{ seq: number; hash: string }> {
    const head = await this.audit.head();
    await this.audit.saveDigest(head.seq, head.hash);
    this.logger.log({ auditDigest: head }, 'audit chain digest');
    return head;
  }
}
