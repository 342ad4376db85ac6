import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { BackupKind, BackupType } from './backup.types.js';
import { BackupOutcome, BackupsService } from './backups.service.js';

export enum BackupJob {
  Daily = 'backup-daily',
  Weekly = 'backup-weekly',
}

/**
 * Leader-only backup schedules: daily differential (kind daily), weekly full (kind
 * weekly; RDS: a manual snapshot); the first backup of an empty repository is a full of kind base. A backup
 * that fails is a failed job run (ops_job_runs) as well as a failed registry row.
 */
@Injectable()
export class BackupScheduleJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(BackupScheduleJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly backups: BackupsService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled || this.config.backup.provider === 'off') {
      return;
    }
    const { dailyCron, weeklyCron } = this.config.backup.schedule;
    this.add(BackupJob.Daily, dailyCron, () => this.daily());
    this.add(BackupJob.Weekly, weeklyCron, () => this.weekly());
  }

  /**
   * pgBackRest: a differential. RDS: the daily backups are RDS's automated ones, so the job
   * checks their retention and window against the configuration (drift is reported, not
   * fixed) and syncs the registry.
   */
  daily(): Promise<JobOutcome> {
    if (this.config.backup.provider === 'rds') {
      return this.leadership.runExclusive(
        BackupJob.Daily,
        AdvisoryLock.BackupSchedule,
        async () => {
          const { expired, drift } = await this.backups.syncRegistry();
          return { automated: true, drift, expired };
        },
      );
    }
    return this.run(BackupJob.Daily, BackupType.Diff, BackupKind.Daily);
  }

  weekly(): Promise<JobOutcome> {
    return this.run(BackupJob.Weekly, BackupType.Full, BackupKind.Weekly);
  }

  private add(name: BackupJob, cronTime: string, tick: () => Promise<JobOutcome>): void {
    this.scheduler.addCronJob(
      name,
      CronJob.from({ cronTime, onTick: () => void tick(), start: true, timeZone: 'UTC' }),
    );
  }

  private run(job: BackupJob, type: BackupType, kind: BackupKind): Promise<JobOutcome> {
    return this.leadership.runExclusive(job, AdvisoryLock.BackupSchedule, async () => {
      this.logger.log({ job, type, kind }, 'scheduled backup starting');
      const outcome: BackupOutcome = await this.backups.runScheduled(type, kind);
      if (outcome.status === 'failed') {
        throw new Error(`backup ${outcome.id} failed: ${outcome.error ?? 'unknown error'}`);
      }
      return outcome;
    });
  }
}
