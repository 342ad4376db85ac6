import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { BackgroundTasks } from '../common/background-tasks.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import { decodeCursor, encodeCursor } from '../common/pagination.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig, NodeAddress } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { AdvisoryLock, LOCK_NAMESPACE } from '../database/locks.js';
import { directClientConfig, nodeName, withDirectClient } from '../database/pg-direct.js';
import { TopologyService } from '../database/topology.service.js';
import { archiveNow } from './archive-now.js';
import { BACKUP_PROVIDER } from './backup-provider.factory.js';
import { BackupMetrics } from './backup.metrics.js';
import type {
  BackupManifest,
  BackupProvider,
  ProviderBackup,
  SettingsDrift,
} from './backup.types.js';
import { BackupKind, BackupType } from './backup.types.js';
import { BackupRow, BackupsRepository } from './backups.repository.js';
import type {
  BackupDetailResponseDto,
  BackupListResponseDto,
  BackupResponseDto,
  RequestableType,
} from './dto/backup.dto.js';

const VECTOR_QUERIES = 3;
const VECTOR_LIMIT = 10;
const REPLAY_WAIT_MS = 60_000;
const PAUSE_WAIT_MS = 10_000;
const POLL_MS = 200;
const RUNNING_ROW_TRIES = 10;

export class BackupInProgressError extends DomainError {
  constructor(readonly runningId: string | null) {
    super(
      ErrorCode.Conflict,
      runningId
        ? `backup ${runningId} is running; one backup at a time`
        : 'another backup is running; one backup at a time',
    );
  }
}

export class BackupsOffError extends DomainError {
  constructor() {
    super(ErrorCode.PreconditionFailed, 'backups are off (BACKUP_PROVIDER=off)');
  }
}

export interface BackupOutcome {
  id: string;
  kind: BackupKind;
  status: 'succeeded' | 'failed';
  label: string | null;
  error?: string;
}

/**
 * Takes backups with their registry row and manifest: a `running` row (one at a time),
 * a `before` marker committed just before the provider's backup, then the manifest read
 * on a replica paused at or after the backup's consistency point (or, with no replica,
 * approximately on the primary), then an `after` marker. Nothing is left `running`.
 */
@Injectable()
export class BackupsService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(BackupsService.name);
  private readonly tasks = new BackgroundTasks(this.logger);
  private settings: { checkedAt: Date; drift: SettingsDrift[] } | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BACKUP_PROVIDER) private readonly provider: BackupProvider | null,
    private readonly backups: BackupsRepository,
    private readonly metrics: BackupMetrics,
    private readonly topology: TopologyService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.provider) {
      return;
    }
    try {
      await this.failAbandoned();
      const last = await this.backups.lastSucceeded();
      if (last?.finishedAt) {
        this.metrics.setLastGood(last.finishedAt);
      }
    } catch (err) {
      this.logger.warn({ error: (err as Error).message }, 'backup registry check at boot failed');
    }
    await this.checkSettings().catch((err: Error) =>
      this.logger.warn({ error: err.message }, 'backup settings check at boot failed'),
    );
  }

  async onModuleDestroy(): Promise<void> {
    await this.tasks.drain();
  }

  /** POST /v1/backups: registers the backup and runs it in the background. */
  async start(type: RequestableType | undefined): Promise<{ id: string }> {
    const registered = await this.register(type ?? BackupType.Diff, BackupKind.OnDemand);
    this.tasks.start('backup', registered.row.id, async () => {
      await this.execute(registered);
    });
    return { id: registered.row.id };
  }

  /** A scheduled backup, waited for (the job records its outcome). */
  async runScheduled(type: BackupType, kind: BackupKind): Promise<BackupOutcome> {
    return this.execute(await this.register(type, kind));
  }

  async get(id: string): Promise<BackupDetailResponseDto> {
    const row = await this.backups.getById(id);
    if (!row) {
      throw new NotFoundError('backup', id);
    }
    return { ...toDto(row), manifest: row.manifest };
  }

  async list(limit: number, cursor: string | undefined): Promise<BackupListResponseDto> {
    const after = cursor ? decodeCursor(cursor) : null;
    const rows = await this.backups.list(
      limit + 1,
      after ? { startedAt: after.createdAt, id: after.id } : null,
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(toDto),
      nextCursor: rows.length > limit && last ? encodeCursor(last.cursorKey, last.id) : null,
      settings: {
        checkedAt: this.settings?.checkedAt.toISOString() ?? null,
        drift: this.settings?.drift ?? [],
      },
    };
  }

  /**
   * The provider's own backup settings against the configuration (RDS: the automated
   * backups' retention and window); a difference is logged, raises the
   * `backup_settings_drift` alert and is shown by GET /v1/backups.
   */
  async checkSettings(): Promise<SettingsDrift[]> {
    const provider = this.mustProvider();
    const drift = await provider.checkSettings();
    this.settings = { checkedAt: new Date(), drift };
    this.metrics.settingsDrift(drift.length > 0);
    if (drift.length > 0) {
      this.logger.warn(
        { provider: provider.name, drift },
        'backup settings drift: the provider differs from the configuration',
      );
    }
    return drift;
  }

  /**
   * Marks registry rows whose set the provider no longer holds (retention removed it) as
   * expired, publishes the repository's size and checks the provider's settings.
   */
  async syncRegistry(): Promise<{ expired: string[]; drift: SettingsDrift[] }> {
    const provider = this.mustProvider();
    const sets = await provider.list();
    const expired = await this.backups.expireMissing(
      provider.name,
      sets.map((s) => s.label),
    );
    if (expired.length > 0) {
      this.logger.log({ expired }, 'backups expired by the repository retention');
    }
    this.metrics.setRepoSize(sets.reduce((sum, s) => sum + (s.repoSizeBytes ?? 0), 0));
    const drift = await this.checkSettings();
    return { expired, drift };
  }

  // ---------------------------------------------------------------------------------

  private mustProvider(): BackupProvider {
    if (!this.provider) {
      throw new BackupsOffError();
    }
    return this.provider;
  }

  /** Inserts the running row; a diff/incr with no full in the repository becomes a base full. */
  private async register(type: BackupType, kind: BackupKind): Promise<Registered> {
    const provider = this.mustProvider();
    let actualType = type;
    let actualKind = kind;
    if (provider.name === 'rds') {
      // RDS takes snapshots only: every requested type is one (full, self-contained).
      actualType = BackupType.Snapshot;
    } else if (type !== BackupType.Full) {
      // NOTE: a provider that cannot list does not refuse the request: the backup itself
      // then fails and is recorded as failed, with the provider's error.
      const sets = await provider.list().catch((err: Error) => {
        this.logger.warn({ error: err.message }, 'backup: could not list the provider backups');
        return null;
      });
      if (sets && !sets.some((s) => s.type === BackupType.Full)) {
        actualType = BackupType.Full;
        actualKind = BackupKind.Base;
      }
    }
    const requestedBy = RequestContextStore.get()?.keyId ?? null;
    const lock = await this.takeRunningLock();
    const row = lock
      ? await this.backups
          .insertRunning(actualKind, actualType, provider.name, requestedBy)
          .catch(async (err: unknown) => {
            await endQuietly(lock);
            throw err;
          })
      : null;
    if (!lock || !row) {
      await endQuietly(lock);
      throw new BackupInProgressError(await this.runningId());
    }
    this.logger.log(
      { backup: row.id, kind: actualKind, type: actualType, requested: type },
      'backup registered',
    );
    return { row, lock };
  }

  /** The running backup's id; the lock holder may not have inserted its row yet. */
  private async runningId(): Promise<string | null> {
    for (let attempt = 0; attempt < RUNNING_ROW_TRIES; attempt += 1) {
      const running = await this.backups.running();
      if (running) {
        return running.id;
      }
      await sleep(POLL_MS);
    }
    return null;
  }

  private async execute({ row, lock }: Registered): Promise<BackupOutcome> {
    const provider = this.mustProvider();
    const started = Date.now();
    this.metrics.started(new Date(started));
    let set: ProviderBackup | null = null;
    try {
      const markerBefore = await this.backups.insertMarker(row.id, 'before');
      this.logger.log({ backup: row.id, type: row.type }, 'backup: provider backup started');
      set = await provider.backup(row.type, row.kind);
      this.logger.log(
        { backup: row.id, label: set.label, stopLsn: set.stopLsn },
        'backup: provider backup done, writing the manifest',
      );
      const manifest = await this.manifest(row.id, set, markerBefore);
      await archiveNow(provider, this.logger, { backup: row.id, lsn: manifest.lsn });
      const durationMs = Date.now() - started;
      await this.backups.succeed(row.id, set, durationMs, manifest);
      this.metrics.succeeded(row.kind, durationMs, set.sizeBytes, new Date());
      this.logger.log(
        { backup: row.id, label: set.label, durationMs, lsn: manifest.lsn, exact: manifest.exact },
        'backup succeeded',
      );
      await this.syncRegistry().catch((err: Error) =>
        this.logger.warn({ error: err.message }, 'backup registry sync failed'),
      );
      return { id: row.id, kind: row.kind, status: 'succeeded', label: set.label };
    } catch (err) {
      const durationMs = Date.now() - started;
      const error = (err as Error).message;
      this.logger.error({ backup: row.id, label: set?.label, durationMs, error }, 'backup failed');
      this.metrics.failed(row.kind, durationMs);
      await this.backups.fail(row.id, error, durationMs, set?.label ?? null);
      return { id: row.id, kind: row.kind, status: 'failed', label: set?.label ?? null, error };
    } finally {
      await endQuietly(lock);
    }
  }

  // --- the manifest ---

  private async manifest(
    backupId: string,
    set: ProviderBackup,
    markerBefore: string,
  ): Promise<BackupManifest> {
    let body: Omit<BackupManifest, 'markerAfter'> | null = null;
    for (const replica of this.replicas()) {
      try {
        body = await this.manifestOnReplica(replica, set.stopLsn, markerBefore);
        break;
      } catch (err) {
        this.logger.warn(
          { backup: backupId, replica: nodeName(replica), error: (err as Error).message },
          'backup manifest: replica unusable, trying the next node',
        );
      }
    }
    if (!body) {
      this.logger.warn(
        { backup: backupId },
        'backup manifest: no replica could be paused; reading an approximate manifest on the primary',
      );
      body = await this.manifestOnPrimary(markerBefore);
    }
    const markerAfter = await this.backups.insertMarker(backupId, 'after');
    return { ...body, markerAfter };
  }

  private replicas(): NodeAddress[] {
    const healthy = new Set(
      this.topology
        .snapshot()
        .filter((s) => s.role === 'replica' && s.healthy && !s.fenced)
        .map((s) => s.name),
    );
    return this.config.database.nodes.filter((n) => healthy.has(nodeName(n)));
  }

  private writer(): NodeAddress {
    const writer = this.config.database.nodes.find((n) => nodeName(n) === this.topology.writerName);
    if (!writer) {
      throw new Error(`the writer ${this.topology.writerName} is not a configured node`);
    }
    return writer;
  }

  private clientConfig(node: NodeAddress): pg.ClientConfig {
    return directClientConfig(this.config.database, node, {
      noQueryTimeout: true,
      applicationName: 'database-unit-backup',
    });
  }

  private async manifestOnReplica(
    node: NodeAddress,
    stopLsn: string | null,
    markerBefore: string,
  ): Promise<Omit<BackupManifest, 'markerAfter'>> {
    const target =
      stopLsn ??
      (await withDirectClient(this.clientConfig(this.writer()), (c) => this.backups.currentLsn(c)));
    return withDirectClient(this.clientConfig(node), async (c) => {
      await this.until(
        () => this.backups.hasReplayed(c, target),
        REPLAY_WAIT_MS,
        () => `the replica did not replay up to ${target} within ${REPLAY_WAIT_MS / 1000} s`,
      );
      await this.backups.pauseReplay(c);
      try {
        await this.until(
          () => this.backups.replayPaused(c),
          PAUSE_WAIT_MS,
          () => 'the replica did not pause its replay',
        );
        const lsn = await this.backups.replayLsn(c);
        if (!lsn) {
          throw new Error('the replica reports no replay position');
        }
        const digest = await this.digest(c, false);
        return {
          lsn,
          takenAt: new Date().toISOString(),
          markerBefore,
          exact: true,
          node: nodeName(node),
          ...digest,
        };
      } finally {
        await this.resume(c, node);
      }
    });
  }

  /** Replay must never stay paused: on the same session, else on a fresh one. */
  private async resume(c: pg.Client, node: NodeAddress): Promise<void> {
    try {
      await this.backups.resumeReplay(c);
    } catch (err) {
      this.logger.warn(
        { replica: nodeName(node), error: (err as Error).message },
        'backup manifest: resume failed on the session; resuming on a new connection',
      );
      await withDirectClient(this.clientConfig(node), (fresh) => this.backups.resumeReplay(fresh));
    }
  }

  private async manifestOnPrimary(
    markerBefore: string,
  ): Promise<Omit<BackupManifest, 'markerAfter'>> {
    const writer = this.writer();
    return withDirectClient(this.clientConfig(writer), async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const lsn = await this.backups.currentLsn(c);
        const digest = await this.digest(c, true);
        await c.query('COMMIT');
        return {
          lsn,
          takenAt: new Date().toISOString(),
          markerBefore,
          exact: false,
          node: nodeName(writer),
          ...digest,
        };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  private async digest(
    c: pg.Client,
    inTransaction: boolean,
  ): Promise<Pick<BackupManifest, 'tables' | 'vectorQueries'>> {
    const tables: BackupManifest['tables'] = {};
    for (const table of await this.backups.applicationTables(c)) {
      tables[table] = await this.backups.tableDigest(c, table);
    }
    const vectorQueries: BackupManifest['vectorQueries'] = [];
    for (const recipeId of await this.backups.sampleRecipeIds(c, VECTOR_QUERIES)) {
      const ids = await this.backups.exactNeighbours(c, recipeId, VECTOR_LIMIT, inTransaction);
      vectorQueries.push({ recipeId, limit: VECTOR_LIMIT, ids });
    }
    return { tables, vectorQueries };
  }

  private async until(
    check: () => Promise<boolean>,
    timeoutMs: number,
    message: () => string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) {
        throw new Error(message());
      }
      await sleep(POLL_MS);
    }
  }

  // --- crash recovery ---

  /**
   * A session advisory lock on the writer, taken before the row is inserted and held
   * until the backup is recorded: a `running` row nobody holds the lock for was left by a
   * crashed process. Null when another process holds it (a backup is running).
   */
  private async takeRunningLock(): Promise<pg.Client | null> {
    const client = new pg.Client(this.clientConfig(this.writer()));
    // NOTE: an error event on an idle client must not crash the process.
    client.on('error', () => undefined);
    try {
      await client.connect();
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        LOCK_NAMESPACE,
        AdvisoryLock.BackupRunning,
      ]);
      if (r.rows[0].ok) {
        return client;
      }
    } catch (err) {
      await endQuietly(client);
      throw err;
    }
    await endQuietly(client);
    return null;
  }

  private async failAbandoned(): Promise<void> {
    await withDirectClient(this.clientConfig(this.writer()), async (c) => {
      const r = await c.query<{ free: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS free', [
        LOCK_NAMESPACE,
        AdvisoryLock.BackupRunning,
      ]);
      if (!r.rows[0].free) {
        return;
      }
      try {
        const failed = await this.backups.failAbandoned(
          'abandoned: the process running this backup stopped before it finished',
        );
        if (failed.length > 0) {
          this.logger.warn(
            { backups: failed },
            'backups left running by a crashed process marked failed',
          );
        }
      } finally {
        await c.query('SELECT pg_advisory_unlock($1, $2)', [
          LOCK_NAMESPACE,
          AdvisoryLock.BackupRunning,
        ]);
      }
    });
  }
}

interface Registered {
  row: BackupRow;
  /** The session holding the BackupRunning lock (closed when the backup is recorded). */
  lock: pg.Client;
}

async function endQuietly(client: pg.Client | null): Promise<void> {
  await client?.end().catch(() => undefined);
}

function toDto(row: BackupRow): BackupResponseDto {
  return {
    id: row.id,
    kind: row.kind,
    type: row.type,
    provider: row.provider,
    label: row.label,
    status: row.status,
    verdict: row.verdict,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
    startLsn: row.startLsn,
    stopLsn: row.stopLsn,
    sizeBytes: row.sizeBytes === null ? null : Number(row.sizeBytes),
    repoSizeBytes: row.repoSizeBytes === null ? null : Number(row.repoSizeBytes),
    checksum: row.checksum,
    durationMs: row.durationMs,
    error: row.error,
  };
}
