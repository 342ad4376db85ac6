import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { CacheService } from '../cache/cache.service.js';
import { BackgroundTasks } from '../common/background-tasks.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { Keystore } from '../security/keystore/keystore.js';
import { PersonalDataCipher } from '../security/crypto/personal-data-cipher.js';
import type { ErasureResponseDto, VerificationReport } from './dto/gdpr.dto.js';
import { ErasureRepository, ErasureRow } from './erasure.repository.js';

/** A request running longer than this is taken to belong to a crashed instance. */
const STALE_RUNNING_MS = 10 * 60_000;
const SWEEP_MS = 60_000;
/** Queued this long without progress: its instance is gone. */
const SWEEP_AGE_MS = 30_000;
const SWEEP_BATCH = 10;
const LEDGER_PAGE = 1_000;

/** Test seam: throws at a named stage of an erasure (fault-injection tests). */
export type ErasureFaultHook = (
  stage: 'after-provider' | 'before-commit' | 'before-key-commit' | 'after-commit',
  kind?: string,
) => void;

/**
 * GDPR erasure. In one transaction on the primary every personal-data provider
 * deletes the user's rows (in dependency order) and the erasure ledger records a
 * keyed hash of the user id; the user's wrapped data key is deleted in a keystore
 * transaction that commits only after that one did (crypto-shredding). Then caches
 * are purged on every instance and a verification pass counts what is left.
 * A failure before the commit changes nothing; the request shows `failed` with the
 * reason and is retried by asking again.
 */
@Injectable()
export class ErasureService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ErasureService.name);
  private readonly tasks = new BackgroundTasks(this.logger);
  faultHook: ErasureFaultHook | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly erasures: ErasureRepository,
    private readonly registry: PersonalDataRegistry,
    private readonly router: ReadRouterService,
    private readonly keystore: Keystore,
    private readonly cipher: PersonalDataCipher,
    private readonly audit: AuditService,
    private readonly scheduler: SchedulerRegistry,
    private readonly cache: CacheService,
  ) {}

  onModuleInit(): void {
    this.cache.onErased((userIds) => {
      if (userIds === null) {
        this.cipher.forget(null);
      } else {
        userIds.forEach((id) => this.cipher.forget(id));
      }
    });
  }

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.tasks.sweepEvery(
      this.scheduler,
      'gdpr-erasure-sweep',
      SWEEP_MS,
      () => this.erasures.pending(SWEEP_AGE_MS, SWEEP_BATCH),
      (id) => this.process(id),
    );
  }

  async onModuleDestroy(): Promise<void> {
    await this.tasks.drain();
  }

  /** POST /v1/users/:id/erasure. `created` is false when an open request already existed. */
  async request(userId: string): Promise<{ request: ErasureResponseDto; created: boolean }> {
    const subject = this.cipher.ledgerHash(userId);
    const open = await this.erasures.openFor(subject);
    if (open) {
      this.start(open.id);
      return { request: toDto(open), created: false };
    }
    const erased = await this.erasures.ledgerEntry(subject);
    if (erased) {
      throw new DomainError(
        ErrorCode.Conflict,
        `user ${userId} was already erased (erasure request ${erased.erasureRequestId}, ${new Date(erased.erasedAt).toISOString()})`,
      );
    }
    const ctx = RequestContextStore.get();
    let row: ErasureRow;
    try {
      row = await this.router.write(async (m) => {
        const found: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [userId]);
        if (found.length === 0) {
          throw new NotFoundError('user', userId);
        }
        const created = await this.erasures.create(
          m,
          userId,
          subject,
          ctx?.keyId ?? null,
          ctx?.requestId ?? null,
        );
        await this.audit.append(m, {
          eventType: 'deletion_requests',
          subjectId: userId,
          resource: `erasure:${created.id}`,
          action: 'requested',
        });
        return created;
      });
    } catch (err) {
      // 23505: a concurrent request for the same user won; answer with it.
      if ((err as { code?: string }).code === '23505') {
        const winner = await this.erasures.openFor(subject);
        if (winner) {
          return { request: toDto(winner), created: false };
        }
      }
      throw err;
    }
    this.start(row.id);
    return { request: toDto(row), created: true };
  }

  async get(id: string): Promise<ErasureResponseDto> {
    const row = await this.erasures.getById(id);
    if (!row) {
      throw new NotFoundError('erasure request', id);
    }
    return toDto(row);
  }

  /** Runs a request now and resolves when it finished (tests, the sweeper). */
  async process(id: string): Promise<void> {
    const claimed = await this.erasures.claim(id, STALE_RUNNING_MS);
    if (!claimed) {
      return;
    }
    if (!claimed.userId) {
      await this.erasures.fail(id, 'the request lost its user id; nothing to do');
      return;
    }
    const userId = claimed.userId;
    const subject = this.cipher.ledgerHash(userId);
    const started = Date.now();
    let deleted: Record<string, number>;
    try {
      const ledger = await this.erasures.ledgerEntry(subject);
      // Resuming: this request's transaction committed before (crash, lost keystore
      // commit, or leftovers found by verification): finish the job idempotently.
      deleted =
        ledger?.erasureRequestId === id
          ? await this.eraseLeftovers(userId, subject)
          : await this.eraseAtomically(id, userId, subject);
      this.faultHook?.('after-commit');
    } catch (err) {
      const reason = (err as Error).message;
      this.logger.error({ erasureRequest: id, error: reason }, 'erasure failed; it can be retried');
      await this.erasures.fail(id, reason);
      await this.auditOutcome(id, userId, 'failed', { reason });
      return;
    }
    // Every instance drops the user's data key from memory (this one at once).
    await this.cache.publishErased([userId]);
    const purgeErrors: string[] = [];
    for (const p of this.registry.all()) {
      if (p.afterErase) {
        await p.afterErase(userId).catch((err: Error) => {
          purgeErrors.push(`${p.kind}: ${err.message}`);
        });
      }
    }
    const report = await this.verify(userId, deleted, purgeErrors);
    if (report.ok) {
      await this.erasures.complete(id, report, true);
    } else {
      // Kept open (with the user id) so the sweeper or a new request finishes it.
      await this.erasures.fail(id, `verification found leftovers: ${leftovers(report)}`);
    }
    await this.auditOutcome(id, userId, report.ok ? 'verified' : 'verification_failed', {
      deleted,
    });
    this.logger.log(
      { erasureRequest: id, verified: report.ok, deleted, tookMs: Date.now() - started },
      report.ok ? 'erasure completed and verified' : 'erasure verification FAILED; will be retried',
    );
  }

  /** The deletes, the ledger entry and the audit row commit together; then the key goes. */
  private async eraseAtomically(
    id: string,
    userId: string,
    subject: Buffer,
  ): Promise<Record<string, number>> {
    const destroy = await this.keystore.beginDestroy(userId, subject);
    try {
      const deleted = await this.router.write(async (m) => {
        const locked: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [
          userId,
        ]);
        if (locked.length === 0) {
          throw new Error('the user no longer exists');
        }
        const counts: Record<string, number> = {};
        for (const p of this.registry.all()) {
          counts[p.kind] = await p.erase(m, userId);
          this.faultHook?.('after-provider', p.kind);
        }
        await this.erasures.writeLedger(m, subject, id);
        await this.audit.append(m, {
          eventType: 'deletion_requests',
          subjectId: userId,
          resource: `erasure:${id}`,
          action: 'completed',
          details: { deleted: counts, keysDestroyed: destroy.deleted },
        });
        this.faultHook?.('before-commit');
        return counts;
      });
      this.faultHook?.('before-key-commit');
      await destroy.commit();
      return { ...deleted, data_keys: destroy.deleted };
    } catch (err) {
      await destroy.rollback();
      throw err;
    }
  }

  /** Deletes whatever is left (rows written after the commit, the key) — idempotent. */
  private async eraseLeftovers(userId: string, subject: Buffer): Promise<Record<string, number>> {
    const counts = await this.router.write(async (m) => {
      const out: Record<string, number> = {};
      for (const p of this.registry.all()) {
        out[p.kind] = await p.erase(m, userId);
      }
      return out;
    });
    return { ...counts, data_keys: await this.keystore.destroy(userId, subject) };
  }

  private async auditOutcome(
    id: string,
    userId: string,
    action: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    await this.router
      .write((m) =>
        this.audit.append(m, {
          eventType: 'deletion_requests',
          subjectId: userId,
          resource: `erasure:${id}`,
          action,
          details,
        }),
      )
      .catch((err: Error) =>
        this.logger.error({ error: err.message }, 'could not audit the erasure outcome'),
      );
  }

  /**
   * Counts what is left of the user: every provider's tables, every other column of
   * the schema that references users, the keystore and the caches. All must be 0.
   */
  async verify(
    userId: string,
    deleted: Record<string, number>,
    purgeErrors: string[] = [],
  ): Promise<VerificationReport> {
    const seen = new Set<string>();
    const tables: VerificationReport['tables'] = [];
    const check = async (
      table: string,
      column: string,
      declaredBy: string | null,
    ): Promise<void> => {
      const key = `${table}.${column}`;
      if (seen.has(key) || table === 'erasure_requests') {
        return; // the request row itself forgets the user id when it completes
      }
      seen.add(key);
      tables.push({
        table,
        column,
        declaredBy,
        rowsLeft: await this.erasures.countReferences(table, column, userId),
      });
    };
    for (const p of this.registry.all()) {
      for (const t of p.tables) {
        await check(t.table, t.userColumn, p.kind);
      }
    }
    for (const c of await this.erasures.userReferenceColumns()) {
      await check(c.table, c.column, null);
    }
    const keysLeft = (await this.keystore.exists(userId)) ? 1 : 0;
    let cacheEntriesLeft = 0;
    for (const p of this.registry.all()) {
      cacheEntriesLeft += p.leftOutside ? await p.leftOutside(userId) : 0;
    }
    const ok =
      tables.every((t) => t.rowsLeft === 0) &&
      keysLeft === 0 &&
      cacheEntriesLeft === 0 &&
      purgeErrors.length === 0;
    return {
      ok,
      verifiedAt: new Date().toISOString(),
      deleted,
      tables,
      keystore: { database: this.keystore.databaseName, keysLeft },
      caches: { entriesLeft: cacheEntriesLeft, purgeErrors },
    };
  }

  /**
   * After a restore from backup: erases again every user the ledger names (matched
   * by keyed hash) and destroys their keys if the keystore still has them. The
   * backup module calls this before the restored database serves traffic.
   */
  async reapplyLedger(): Promise<{ usersErased: number; keysDestroyed: number }> {
    const { usersErased, keysDestroyed } = await this.reapply(null);
    return { usersErased, keysDestroyed };
  }

  /**
   * The same on another database — a restored copy in a scratch instance (backup
   * validation, point-in-time restores): its rows are erased through the same providers
   * in one transaction per user; the keystore (never restored with it) is this
   * service's. Caches are not touched: nothing serves from that copy.
   */
  async reapplyLedgerOn(
    target: DataSource,
  ): Promise<{ usersErased: number; keysDestroyed: number; userIds: string[] }> {
    return this.reapply(target);
  }

  /**
   * What is left of erased users on `target`: for every user id the ledger names and
   * that `userIds` lists, the rows of every provider table and user-referencing column.
   */
  async leftoversOn(
    target: DataSource,
    userIds: string[],
  ): Promise<Array<{ userId: string; table: string; rows: number }>> {
    const out: Array<{ userId: string; table: string; rows: number }> = [];
    const ledger = await this.ledgerSet(target.manager);
    const columns = new Map<string, string>();
    for (const p of this.registry.all()) {
      for (const t of p.tables) {
        columns.set(`${t.table}.${t.userColumn}`, t.table);
      }
    }
    for (const c of await this.erasures.userReferenceColumns()) {
      columns.set(`${c.table}.${c.column}`, c.table);
    }
    columns.delete('erasure_requests.user_id');
    for (const userId of userIds) {
      if (!ledger.has(this.cipher.ledgerHash(userId).toString('hex'))) {
        continue;
      }
      for (const [key, table] of columns) {
        const column = key.slice(table.length + 1);
        const rows = await this.erasures.countReferences(table, column, userId, target.manager);
        if (rows > 0) {
          out.push({ userId, table: key, rows });
        }
      }
    }
    return out;
  }

  private async ledgerSet(m?: EntityManager): Promise<Set<string>> {
    // Both copies: the database's ledger (older after a restore) and the keystore's
    // tombstones (not restored with it).
    const hashes = [
      ...(await this.erasures.ledgerHashes(m)),
      ...(await this.keystore.erasedHashes()),
    ];
    return new Set(hashes.map((h) => h.toString('hex')));
  }

  private async reapply(
    target: DataSource | null,
  ): Promise<{ usersErased: number; keysDestroyed: number; userIds: string[] }> {
    const ledger = await this.ledgerSet(target?.manager);
    const userIds: string[] = [];
    const erased = (id: string): boolean => ledger.has(this.cipher.ledgerHash(id).toString('hex'));
    let usersErased = 0;
    let keysDestroyed = 0;
    let after: string | null = null;
    for (;;) {
      const ids = await this.erasures.userIdsAfter(after, LEDGER_PAGE, target?.manager);
      for (const userId of ids.filter(erased)) {
        if (target) {
          await target.transaction(async (m) => {
            for (const p of this.registry.all()) {
              await p.erase(m, userId);
            }
          });
          keysDestroyed += await this.keystore.destroy(userId, this.cipher.ledgerHash(userId));
        } else {
          const gone = await this.eraseLeftovers(userId, this.cipher.ledgerHash(userId));
          keysDestroyed += gone.data_keys;
          await this.cache.publishErased([userId]);
          for (const p of this.registry.all()) {
            await p.afterErase?.(userId);
          }
        }
        usersErased += 1;
        userIds.push(userId);
      }
      if (ids.length < LEDGER_PAGE) {
        break;
      }
      after = ids[ids.length - 1];
    }
    let keyAfter: string | null = null;
    for (;;) {
      const ids = await this.keystore.userIdsAfter(keyAfter, LEDGER_PAGE);
      for (const userId of ids.filter(erased)) {
        keysDestroyed += await this.keystore.destroy(userId, this.cipher.ledgerHash(userId));
      }
      if (ids.length < LEDGER_PAGE) {
        break;
      }
      keyAfter = ids[ids.length - 1];
    }
    this.logger.warn(
      { usersErased, keysDestroyed, target: target ? 'restored copy' : 'service database' },
      'erasure ledger re-applied',
    );
    return { usersErased, keysDestroyed, userIds };
  }

  private start(id: string): void {
    this.tasks.start('erasureRequest', id, () => this.process(id));
  }
}

function leftovers(r: VerificationReport): string {
  const parts = r.tables
    .filter((t) => t.rowsLeft > 0)
    .map((t) => `${t.table}.${t.column}=${t.rowsLeft}`);
  if (r.keystore.keysLeft > 0) {
    parts.push(`keystore=${r.keystore.keysLeft}`);
  }
  if (r.caches.entriesLeft > 0) {
    parts.push(`caches=${r.caches.entriesLeft}`);
  }
  return [...parts, ...r.caches.purgeErrors].join(', ');
}

function toDto(r: ErasureRow): ErasureResponseDto {
  return {
    id: r.id,
    status: r.status,
    attempts: r.attempts,
    error: r.error,
    verified: r.verified,
    report: (r.report as VerificationReport | null) ?? null,
    createdAt: new Date(r.createdAt).toISOString(),
    completedAt: r.completedAt ? new Date(r.completedAt).toISOString() : null,
  };
}
