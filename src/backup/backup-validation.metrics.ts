import { Injectable } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { MetricsService } from '../monitoring/metrics.service.js';
import { BackupMetrics } from './backup.metrics.js';

export enum BackupValidationMetric {
  RestorationTime = 'dbu_backup_restoration_time_seconds',
  LastGoodValidation = 'dbu_backup_last_good_validation_timestamp_seconds',
}

/** Restoration metrics (spec: restoration_time); the restoration_test_failed alert lives in BackupMetrics. */
@Injectable()
export class BackupValidationMetrics {
  readonly restorationTime: Gauge<'operation'>;
  readonly lastGoodValidation: Gauge;
  constructor(
    metrics: MetricsService,
    private readonly backups: BackupMetrics,
  ) {
    const registers = [metrics.registry];
    this.restorationTime = new Gauge({
      name: BackupValidationMetric.RestorationTime,
      help: 'Seconds from the start of the last restore to a validated (or ready) instance',
      labelNames: ['operation'],
      registers,
    });
    this.lastGoodValidation = new Gauge({
      name: BackupValidationMetric.LastGoodValidation,
      help: 'Unix time of the last validation whose checks all passed (0: none yet)',
      registers,
    });
  }

  validated(passed: boolean, seconds: number | null, at: Date): void {
    if (seconds !== null) {
      this.restorationTime.set({ operation: 'validation' }, seconds);
    }
    if (passed) {
      this.lastGoodValidation.set(at.getTime() / 1000);
    }
    this.backups.restorationTest(passed);
  }

  restored(seconds: number): void {
    this.restorationTime.set({ operation: 'restore' }, seconds);
  }
}
