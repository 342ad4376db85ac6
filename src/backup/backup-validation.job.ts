import { Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { ValidationService } from './validation.service.js';

export enum BackupValidationJobName {
  Monthly = 'backup-validation',
}

/** Monthly, leader-only: validates the newest succeeded backup (BACKUP_VALIDATION_CRON). */
@Injectable()
export class BackupValidationJob implements OnApplicationBootstrap {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly validations: ValidationService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled || this.config.backup.provider === 'off') {
      return;
    }
    this.scheduler.addCronJob(
      BackupValidationJobName.Monthly,
      CronJob.from({
        cronTime: this.config.backup.schedule.validationCron,
        onTick: () => void this.run(),
        start: true,
      }),
    );
  }

  run(): Promise<JobOutcome> {
    return this.leadership.runExclusive(
      BackupValidationJobName.Monthly,
      AdvisoryLock.BackupValidation,
      async () => (await this.validations.validateNewest()) ?? { skipped: 'no succeeded backup' },
    );
  }
}
