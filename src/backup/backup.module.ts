import { Module } from '@nestjs/common';
import { GdprModule } from '../gdpr/gdpr.module.js';
import { BackupValidationJob } from './backup-validation.job.js';
import { BackupValidationMetrics } from './backup-validation.metrics.js';
import { RestoresController } from './restores.controller.js';
import { RestoresService } from './restores.service.js';
import { ValidationRepository } from './validation.repository.js';
import { ValidationService } from './validation.service.js';
import { ValidationsController } from './validations.controller.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { BACKUP_PROVIDER, createBackupProvider } from './backup-provider.factory.js';
import { BackupMetrics } from './backup.metrics.js';
import { BackupScheduleJob } from './backup-schedule.job.js';
import { BackupsController } from './backups.controller.js';
import { BackupsRepository } from './backups.repository.js';
import { BackupsService } from './backups.service.js';

/** Backups (registry, schedules, manifest), restore validation and point-in-time restores. */
@Module({
  imports: [GdprModule],
  controllers: [BackupsController, ValidationsController, RestoresController],
  providers: [
    {
      provide: BACKUP_PROVIDER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => createBackupProvider(config),
    },
    BackupMetrics,
    BackupsRepository,
    BackupsService,
    BackupScheduleJob,
    ValidationRepository,
    ValidationService,
    RestoresService,
    BackupValidationMetrics,
    BackupValidationJob,
  ],
  exports: [BackupsService, ValidationService, RestoresService, BackupValidationJob],
})
export class BackupModule {}
