import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { expiredPartitions } from './audit-partitions.js';
import { AuditRepository, ChainPoint, RetentionCheckpoint } from './audit.repository.js';
import { AuditService, VerifyReport } from './audit.service.js';

export enum AuditJob {
  Maintenance = 'audit-maintenance',
}

const MONTHS_AHEAD = 2;

export interface AuditMaintenanceResult {
  created: string[];
  verification: VerifyReport;
  /** Empty when the chain did not verify: retention never destroys evidence. */
  dropped: RetentionCheckpoint[];
  digest: ChainPoint;
}

/**
 * Daily, leader-only: creates the coming months' partitions, verifies the chain from
 * the last verified checkpoint, drops partitions older than AUDIT_RETENTION_YEARS (the
 * only deletion the audit log knows) and publishes the digest. Creating and dropping go
 * through the owner's functions: the service's role owns no audit table.
 */
@Injectable()
export class AuditMaintenanceJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuditMaintenanceJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly audit: AuditService,
    private readonly repository: AuditRepository,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.scheduler.addCronJob(
      AuditJob.Maintenance,
      CronJob.from({
        cronTime: this.config.audit.maintenanceCron,
        onTick: () => void this.run(),
        start: true,
      }),
    );
  }

  run(): Promise<JobOutcome> {
    return this.leadership.runExclusive(
      AuditJob.Maintenance,
      AdvisoryLock.JobAuditMaintenance,
      () => this.maintain(),
    );
  }

  async maintain(): Promise<AuditMaintenanceResult> {
    const created = await this.repository.createPartitions(MONTHS_AHEAD);
    const verification = await this.audit.verify({ mode: 'incremental', record: true });
    const dropped: RetentionCheckpoint[] = [];
    if (!verification.valid) {
      this.logger.error(
        { firstBroken: verification.firstBroken },
        'audit chain verification FAILED: no partition is dropped until it is resolved',
      );
    } else {
      const retentionYears = this.config.audit.retentionYears;
      const { names, now } = await this.repository.partitions();
      for (const name of expiredPartitions(names, now, retentionYears)) {
        const checkpoint = await this.repository.dropPartition(name, retentionYears);
        dropped.push(checkpoint);
        this.logger.warn(
          {
            partition: name,
            retentionYears,
            rowsDropped: checkpoint.rowsDropped,
            sealedSeq: checkpoint.sealedSeq,
          },
          'dropped an expired audit partition',
        );
      }
    }
    const digest = await this.audit.publishDigest();
    return { created, verification, dropped, digest };
  }
}
