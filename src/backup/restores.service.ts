import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import pg from 'pg';
import { BackgroundTasks } from '../common/background-tasks.js';
import { InvalidInputError, NotFoundError } from '../common/errors.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { ErasureService } from '../gdpr/erasure.service.js';
import { BackupValidationMetrics } from './backup-validation.metrics.js';
import { BACKUP_PROVIDER } from './backup-provider.factory.js';
import type { BackupProvider, RecoveryTarget, RestoredInstance } from './backup.types.js';
import { BackupsOffError } from './backups.service.js';
import type { CreateRestoreDto, RestoreResponseDto } from './dto/restore.dto.js';
import { refuseTarget } from './recovery-window.js';
import { RestoreRow, ValidationRepository } from './validation.repository.js';
import { scratchDataSource } from './validation.service.js';

export enum RestoreJob {
  Sweep = 'restore-expiry-sweep',
}

const SWEEP_MS = 60_000;

/**
 * Point-in-time restores into scratch instances: the target is checked against the
 * recoverable window (gaps excluded) first; the copy gets the erasure ledger re-applied
 * before it is reported ready, and is removed when it expires (leader-only sweeper).
 */
@Injectable()
export class RestoresService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(RestoresService.name);
  private readonly tasks = new BackgroundTasks(this.logger);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BACKUP_PROVIDER) private readonly provider: BackupProvider | null,
    private readonly repository: ValidationRepository,
    private readonly leadership: JobLeadershipService,
    private readonly erasure: ErasureService,
    private readonly metrics: BackupValidationMetrics,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled || !this.provider) {
      return;
    }
    const timer = setInterval(
      () =>
        void this.leadership.runExclusive(RestoreJob.Sweep, AdvisoryLock.RestoreSweep, () =>
          this.sweep(),
        ),
      SWEEP_MS,
    );
    timer.unref();
    this.scheduler.addInterval(RestoreJob.Sweep, timer);
  }

  async onModuleDestroy(): Promise<void> {
    await this.tasks.drain();
  }

  async request(dto: CreateRestoreDto): Promise<{ id: string }> {
    const provider = this.mustProvider();
    const given = [dto.targetTime ? 'targetTime' : null, dto.targetLsn ? 'targetLsn' : null].filter(
      Boolean,
    );
    if (given.length !== 1) {
      const message = `exactly one of targetTime, targetLsn is required (given: ${given.length === 0 ? 'none' : given.join(', ')})`;
      throw new InvalidInputError(
        (given.length === 0 ? ['targetTime', 'targetLsn'] : given).map((field) => ({
          field: field!,
          message,
        })),
      );
    }
    const target: RecoveryTarget = dto.targetTime
      ? { kind: 'time', time: new Date(dto.targetTime) }
      : { kind: 'lsn', lsn: dto.targetLsn!.toUpperCase() };
    if (target.kind === 'lsn' && provider.name === 'rds') {
      throw new InvalidInputError([
        {
          field: 'targetLsn',
          message: 'RDS restores to a point in time, not to an LSN: give targetTime',
        },
      ]);
    }
    const window = await provider.detailedWindow();
    const refused = refuseTarget(
      window,
      target.kind === 'time' ? { time: target.time } : { lsn: (target as { lsn: string }).lsn },
    );
    if (refused) {
      throw new InvalidInputError([
        { field: target.kind === 'time' ? 'targetTime' : 'targetLsn', message: refused },
      ]);
    }
    const row = await this.repository.createRestore(
      {
        time: target.kind === 'time' ? target.time : null,
        lsn: target.kind === 'lsn' ? target.lsn : null,
      },
      this.leadership.instanceId,
      RequestContextStore.get()?.keyId ?? null,
    );
    this.tasks.start('restore', row.id, () => this.execute(row.id, target));
    return { id: row.id };
  }

  async get(id: string): Promise<RestoreResponseDto> {
    const row = await this.repository.restore(id);
    if (!row) {
      throw new NotFoundError('restore', id);
    }
    return {
      id: row.id,
      status: row.status,
      targetTime: row.targetTime ? new Date(row.targetTime).toISOString() : null,
      targetLsn: row.targetLsn,
      host: row.status === 'ready' ? row.host : null,
      port: row.status === 'ready' ? row.port : null,
      databases: row.status === 'ready' ? await this.databases(row) : [],
      user: this.config.database.user,
      startedAt: new Date(row.startedAt).toISOString(),
      readyAt: row.readyAt ? new Date(row.readyAt).toISOString() : null,
      expiresAt: row.expiresAt ? new Date(row.expiresAt).toISOString() : null,
      error: row.error,
    };
  }

  /** Waits for background restores (tests). */
  drain(): Promise<void> {
    return this.tasks.drain();
  }

  /** Removes expired restores (the leader's sweeper; tests call it directly). */
  async sweep(): Promise<{ expired: string[] }> {
    const expired: string[] = [];
    const provider = this.mustProvider();
    for (const r of await this.repository.expiredRestores()) {
      if (r.scratchDir) {
        await provider.removeRestored(r.scratchDir);
      }
      await this.repository.restoreExpired(r.id);
      expired.push(r.id);
      this.logger.log({ restore: r.id }, 'expired restore removed');
    }
    return { expired };
  }

  private async databases(row: RestoreRow): Promise<string[]> {
    if (!row.scratchDir || !row.port || !this.provider) {
      return [];
    }
    const client = new pg.Client(
      this.provider.connectionFor(row.scratchDir, row.host, row.port, 'postgres'),
    );
    try {
      await client.connect();
      const res = await client.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname`,
      );
      return res.rows.map((r) => r.datname);
    } catch (err) {
      this.logger.warn({ restore: row.id, error: (err as Error).message }, 'restore not reachable');
      return [];
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private mustProvider(): BackupProvider {
    if (!this.provider) {
      throw new BackupsOffError();
    }
    return this.provider;
  }

  private async execute(id: string, target: RecoveryTarget): Promise<void> {
    let scratch: RestoredInstance | null = null;
    try {
      scratch = await this.mustProvider().restore(target, {
        name: `${this.config.database.name}-restore-${id.slice(0, 8)}`,
        purpose: 'restore',
        onPrepared: (ref) => this.repository.setRestoreScratch(id, ref, null, null),
      });
      await this.repository.setRestoreScratch(id, scratch.ref, scratch.port, scratch.host);
      await this.reapplyLedger(scratch);
      await this.repository.restoreReady(
        id,
        scratch.readyAt,
        this.config.backup.scratch.restoreTtlMinutes,
      );
      this.metrics.restored(
        (scratch.readyAt.getTime() - scratch.restoreStartedAt.getTime()) / 1000,
      );
      this.logger.log(
        { restore: id, instance: scratch.ref, port: scratch.port },
        'point-in-time restore ready',
      );
    } catch (err) {
      const message = (err as Error).message;
      this.logger.error({ restore: id, error: message }, 'point-in-time restore failed');
      await scratch
        ?.stop()
        .catch((e: Error) =>
          this.logger.error(
            { restore: id, instance: scratch?.ref, error: e.message },
            'could not remove the temporary instance',
          ),
        );
      await this.repository.restoreFailed(id, message);
    }
  }

  /** Nothing of an erased user may be readable on the copy it hands out. */
  private async reapplyLedger(scratch: RestoredInstance): Promise<void> {
    const ds = scratchDataSource(scratch.clientConfig(this.config.database.name));
    await ds.initialize();
    try {
      await this.erasure.reapplyLedgerOn(ds);
    } finally {
      await ds.destroy();
    }
  }
}
