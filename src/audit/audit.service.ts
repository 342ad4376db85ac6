import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { PersonalDataCipher } from '../security/crypto/personal-data-cipher.js';
import { AuditKeysService } from './audit-keys.service.js';
import type { DataChange, DataChangeSink } from '../common/data-change.js';
import { RequestContextStore } from '../common/request-context.js';
import { chainHash, GENESIS_HASH } from './audit-hash.js';
import {
  AuditEventType,
  AuditQuery,
  AuditRepository,
  AuditRow,
  ChainPoint,
  VerificationCheckpoint,
} from './audit.repository.js';

const ACCESS_FLUSH_MS = 1_000;
const ACCESS_MAX_BATCH = 500;

export interface AuditEvent {
  eventType: AuditEventType;
  resource: string;
  action: string;
  subjectId?: string | null;
  actor?: string | null;
  /** Sealed with the audit data key before it is stored. */
  details?: unknown;
  occurredAtMs?: number;
  requestId?: string | null;
}

export type VerifyMode = 'full' | 'incremental';

/**
 * Where a verification starts (the row after `seq` must link to `hash`): the genesis
 * hash; the newest retention checkpoint (the rows before it were dropped, sealed by
 * the database); or, incremental only, the last verified checkpoint.
 */
export interface VerifyStart {
  from: 'genesis' | 'retention_checkpoint' | 'verified_checkpoint';
  seq: number;
  hash: string;
  /** When the checkpoint was written (null for genesis). */
  at: string | null;
}

export interface VerifyReport {
  valid: boolean;
  mode: VerifyMode;
  start: VerifyStart;
  /** The rows checked now: `fromSeq` to `head.seq` (none when fromSeq > head.seq). */
  fromSeq: number;
  rowsChecked: number;
  head: ChainPoint;
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
export class AuditService implements DataChangeSink, OnModuleDestroy {
  private readonly logger = new Logger(AuditService.name);

  private pendingAccess: Array<AuditEvent & { requestId: string | null; at: number }> = [];
  private accessTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  /** The walk in flight per mode, which API calls arriving meanwhile share (see verify). */
  private readonly walks = new Map<VerifyMode, Promise<VerifyReport>>();

  constructor(
    private readonly audit: AuditRepository,
    private readonly keys: AuditKeysService,
    private readonly cipher: PersonalDataCipher,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  /** The stored pseudonym of a subject (a user id is never stored in clear). */
  subjectRef(subjectId: string): string {
    return this.cipher.subjectRef(subjectId);
  }

  async append(m: EntityManager, event: AuditEvent): Promise<AuditRow> {
    const [row] = await this.appendMany(m, [event]);
    return row;
  }

  /**
   * Several events in order under one lock of the chain head, inserted by one
   * statement (the database still checks and moves the head row by row).
   */
  async appendMany(m: EntityManager, events: readonly AuditEvent[]): Promise<AuditRow[]> {
    if (events.length === 0) {
      return [];
    }
    const head = await this.audit.lockHead(m);
    const ctx = RequestContextStore.get();
    const rows: AuditRow[] = [];
    let prev: { seq: number; hash: string; occurredAtMs: number | null } = head;
    for (const event of events) {
      const seq = prev.seq + 1;
      const details = event.details ?? null;
      // The database refuses a row dated before the one it follows (partitions then hold
      // consecutive stretches of the chain): an event that waited in the access buffer
      // while a later one was appended takes that one's time.
      const occurredAtMs = Math.max(event.occurredAtMs ?? Date.now(), prev.occurredAtMs ?? 0);
      const fields = {
        seq,
        occurredAtMs,
        eventType: event.eventType,
        actor: event.actor ?? ctx?.keyId ?? null,
        subjectId: event.subjectId ? this.subjectRef(event.subjectId) : null,
        resource: event.resource,
        action: event.action,
        requestId: event.requestId ?? ctx?.requestId ?? null,
        details: details === null ? null : await this.keys.seal(seq, details),
        prevHash: prev.hash,
      };
      const row: AuditRow = { ...fields, hash: chainHash(fields) };
      rows.push(row);
      prev = row;
    }
    await this.audit.appendMany(m, rows);
    return rows;
  }

  /**
   * `user_data_access`: reads of personal data. Buffered and appended in one
   * transaction per flush (ACCESS_FLUSH_MS), so reads do not each take the chain
   * lock; a crash loses at most the last flush interval of access events.
   */
  recordAccess(subjectId: string, resource: string, action = 'read'): void {
    const ctx = RequestContextStore.get();
    this.pendingAccess.push({
      eventType: 'user_data_access',
      subjectId,
      resource,
      action,
      actor: ctx?.keyId ?? null,
      requestId: ctx?.requestId ?? null,
      at: Date.now(),
    });
    if (this.pendingAccess.length >= ACCESS_MAX_BATCH) {
      void this.flushAccess();
    } else if (!this.accessTimer) {
      this.accessTimer = setTimeout(() => void this.flushAccess(), ACCESS_FLUSH_MS);
      this.accessTimer.unref();
    }
  }

  /** Appends the buffered access events now (also on shutdown). */
  flushAccess(): Promise<void> {
    if (this.accessTimer) {
      clearTimeout(this.accessTimer);
      this.accessTimer = null;
    }
    this.flushing = this.flushing.then(async () => {
      const batch = this.pendingAccess;
      this.pendingAccess = [];
      if (batch.length === 0) {
        return;
      }
      try {
        await this.dataSource.transaction(async (m) => {
          await this.appendMany(
            m,
            batch.map((e) => ({ ...e, occurredAtMs: e.at })),
          );
        });
      } catch (err) {
        // Kept for the next flush: an access event is not dropped on a database blip.
        this.pendingAccess = [...batch, ...this.pendingAccess];
        this.logger.warn(
          { events: batch.length, error: (err as Error).message },
          'could not record data access events; will retry',
        );
        if (!this.accessTimer) {
          this.accessTimer = setTimeout(() => void this.flushAccess(), ACCESS_FLUSH_MS * 5);
          this.accessTimer.unref();
        }
      }
    });
    return this.flushing;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flushAccess();
  }

  /** Entries in chain order with their details opened (for `audit:read` callers). */
  async list(q: AuditQuery): Promise<AuditRow[]> {
    const rows = await this.audit.find({
      ...q,
      subjectId: q.subjectId ? this.subjectRef(q.subjectId) : undefined,
    });
    return Promise.all(
      rows.map(async (r) => ({ ...r, details: await this.keys.open(r.seq, r.details) })),
    );
  }

  /** DataChangeSink: every data modification recorded by a feature module. */
  async record(m: EntityManager, change: DataChange): Promise<void> {
    await this.recordMany(m, [change]);
  }

  async recordMany(m: EntityManager, changes: readonly DataChange[]): Promise<void> {
    await this.appendMany(
      m,
      changes.map((change) => ({
        eventType: 'data_modifications',
        resource: `${change.entity}:${change.entityId}`,
        action: change.action,
        actor: change.actor ?? null,
        details: change.fields ? { fields: change.fields } : null,
      })),
    );
  }

  /**
   * Walks the chain and reports the first row whose link or hash does not hold.
   * `full` checks every retained row, from the newest retention checkpoint (or the
   * genesis hash); `incremental` continues from the last verified checkpoint, so a
   * log holding years of rows is not walked again on every call. `record` stores how
   * far a valid walk got, for the next incremental one.
   *
   * A walk costs CPU in proportion to the rows it checks (a hash per row). Calls that do
   * not record (the API's) share the walk of their mode that is in flight on this
   * instance, so concurrent calls cost one walk, not one each; the shared report's `head`
   * says how far it reached. The scheduled job's recording walk is always its own.
   */
  async verify(opts: { mode?: VerifyMode; record?: boolean } = {}): Promise<VerifyReport> {
    const mode = opts.mode ?? 'full';
    if (opts.record) {
      return this.walk(mode, true);
    }
    const inFlight = this.walks.get(mode);
    if (inFlight) {
      return inFlight;
    }
    const walk = this.walk(mode, false).finally(() => this.walks.delete(mode));
    this.walks.set(mode, walk);
    return walk;
  }

  private async walk(mode: VerifyMode, record: boolean): Promise<VerifyReport> {
    // The head first: every row up to it is committed (a row and the head move together).
    const head = await this.audit.head();
    const last = await this.audit.lastVerification();
    const start = await this.verifyStart(mode, last);
    const published = await this.audit.digests(start.seq);
    const digests = new Map(published.map((d) => [d.seq, d.hash]));
    let prevHash = start.hash;
    let expectedSeq = start.seq + 1;
    let checked = 0;
    let digestsChecked = 0;
    const report = (firstBroken: VerifyReport['firstBroken']): VerifyReport => ({
      valid: firstBroken === null,
      mode,
      start,
      fromSeq: start.seq + 1,
      rowsChecked: checked,
      head,
      firstBroken,
      digestsChecked,
    });
    const broken = (seq: number, reason: string): VerifyReport => report({ seq, reason });
    // The head never goes back: rows that were verified or published past it were removed.
    const beyond = Math.max(last?.seq ?? 0, ...published.map((d) => d.seq));
    if (beyond > head.seq) {
      return broken(
        head.seq + 1,
        `rows ${head.seq + 1} to ${beyond} were verified or published before and are gone`,
      );
    }
    for (;;) {
      const rows = await this.audit.chunk(expectedSeq - 1, head.seq, VERIFY_CHUNK);
      for (const row of rows) {
        if (row.seq !== expectedSeq) {
          return broken(expectedSeq, `row ${expectedSeq} is missing (next is ${row.seq})`);
        }
        if (row.prevHash !== prevHash) {
          return broken(
            row.seq,
            row.seq === start.seq + 1 && start.from !== 'genesis'
              ? `prev_hash does not continue the ${start.from.replace('_', ' ')} at seq ${start.seq}`
              : 'prev_hash does not match the previous row',
          );
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
    if (expectedSeq - 1 !== head.seq) {
      return broken(
        expectedSeq,
        `row ${expectedSeq} is missing (the chain head is at ${head.seq})`,
      );
    }
    if (head.hash !== prevHash) {
      return broken(head.seq, 'chain head hash differs from the last row');
    }
    if (record && checked > 0) {
      await this.audit.saveVerification({
        mode,
        fromSeq: start.seq + 1,
        to: head,
        rowsChecked: checked,
      });
    }
    return report(null);
  }

  private async verifyStart(
    mode: VerifyMode,
    last: VerificationCheckpoint | null,
  ): Promise<VerifyStart> {
    const seal = await this.audit.retentionSeal();
    if (mode === 'incremental' && last && last.seq >= (seal?.sealedSeq ?? 0)) {
      return { from: 'verified_checkpoint', seq: last.seq, hash: last.hash, at: last.verifiedAt };
    }
    return seal
      ? {
          from: 'retention_checkpoint',
          seq: seal.sealedSeq,
          hash: seal.sealedHash,
          at: seal.droppedAt,
        }
      : { from: 'genesis', seq: 0, hash: GENESIS_HASH, at: null };
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
