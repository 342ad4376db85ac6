import { Inject, Injectable } from '@nestjs/common';
import { Gauge } from 'prom-client';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import type { BackupKind } from './backup.types.js';

export enum BackupMetric {
  CompletionStatus = 'dbu_backup_completion_status',
  Duration = 'dbu_backup_duration_seconds',
  Size = 'dbu_backup_size_bytes',
  RepoSize = 'dbu_backup_repo_size_bytes',
  LastGoodTimestamp = 'dbu_backup_last_good_timestamp_seconds',
  LastGoodAge = 'dbu_backup_last_good_age_seconds',
  Alert = 'dbu_backup_alert',
}

/** The spec's backup alerts, as alert-state gauges (1 firing, 0 not). */
export enum BackupAlert {
  Failed = 'backup_failed',
  DurationLong = 'backup_duration_long',
  RestorationTestFailed = 'restoration_test_failed',
  /** The provider's backup settings (RDS retention, window) differ from the configuration. */
  SettingsDrift = 'backup_settings_drift',
}

/** Severities of the spec's backup alerts (label `severity`, for routing). */
const SEVERITY: Record<BackupAlert, string> = {
  [BackupAlert.Failed]: 'critical',
  [BackupAlert.DurationLong]: 'medium',
  [BackupAlert.RestorationTestFailed]: 'high',
  [BackupAlert.SettingsDrift]: 'medium',
};

/** The spec's backup monitoring: completion status, duration, size; alerts as gauges. */
@Injectable()
export class BackupMetrics {
  private readonly completion: Gauge<'kind'>;
  private readonly duration: Gauge<'kind'>;
  private readonly size: Gauge<'kind'>;
  private readonly repoSize: Gauge;
  private readonly lastGood: Gauge;
  private readonly alert: Gauge<'alert' | 'severity'>;
  private lastGoodAt: Date | null = null;
  private runningSince: Date | null = null;
  private lastDurationMs = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    metrics: MetricsService,
  ) {
    const registers = [metrics.registry];
    this.completion = new Gauge({
      name: BackupMetric.CompletionStatus,
      help: 'Outcome of the last backup of each kind: 1 succeeded, 0 failed',
      labelNames: ['kind'],
      registers,
    });
    this.duration = new Gauge({
      name: BackupMetric.Duration,
      help: 'Duration of the last backup of each kind (backup + manifest), seconds',
      labelNames: ['kind'],
      registers,
    });
    this.size = new Gauge({
      name: BackupMetric.Size,
      help: 'Database size held by the last successful backup of each kind, bytes',
      labelNames: ['kind'],
      registers,
    });
    this.repoSize = new Gauge({
      name: BackupMetric.RepoSize,
      help: 'Bytes the retained backup sets take in the repository (compressed, encrypted)',
      registers,
    });
    this.lastGood = new Gauge({
      name: BackupMetric.LastGoodTimestamp,
      help: 'Unix time the newest successful backup finished',
      registers,
    });
    const age: Gauge = new Gauge({
      name: BackupMetric.LastGoodAge,
      help: 'Seconds since the newest successful backup finished; -1 while none has',
      registers,
      collect: () => {
        age.set(this.lastGoodAt ? (Date.now() - this.lastGoodAt.getTime()) / 1000 : -1);
      },
    });
    const alert: Gauge<'alert' | 'severity'> = new Gauge({
      name: BackupMetric.Alert,
      help: 'Backup alerts (spec, 1 = firing): backup_failed (critical), backup_duration_long (medium), restoration_test_failed (high), backup_settings_drift (medium)',
      labelNames: ['alert', 'severity'],
      registers,
      collect: () => {
        this.setAlert(BackupAlert.DurationLong, this.durationLong());
      },
    });
    this.alert = alert;
    this.setAlert(BackupAlert.Failed, false);
    this.setAlert(BackupAlert.RestorationTestFailed, false);
    this.setAlert(BackupAlert.SettingsDrift, false);
  }

  started(at: Date): void {
    this.runningSince = at;
  }

  succeeded(kind: BackupKind, durationMs: number, sizeBytes: number | null, at: Date): void {
    this.runningSince = null;
    this.lastDurationMs = durationMs;
    this.completion.set({ kind }, 1);
    this.duration.set({ kind }, durationMs / 1000);
    if (sizeBytes !== null) {
      this.size.set({ kind }, sizeBytes);
    }
    this.setAlert(BackupAlert.Failed, false);
    this.setLastGood(at);
  }

  failed(kind: BackupKind, durationMs: number): void {
    this.runningSince = null;
    this.lastDurationMs = durationMs;
    this.completion.set({ kind }, 0);
    this.duration.set({ kind }, durationMs / 1000);
    this.setAlert(BackupAlert.Failed, true);
  }

  setLastGood(at: Date): void {
    if (!this.lastGoodAt || at > this.lastGoodAt) {
      this.lastGoodAt = at;
      this.lastGood.set(at.getTime() / 1000);
    }
  }

  /** restoration_test_failed: the last validation failed (cleared by a passing one). */
  restorationTest(passed: boolean): void {
    this.setAlert(BackupAlert.RestorationTestFailed, !passed);
  }

  /** backup_settings_drift: the last settings check found a difference. */
  settingsDrift(drifting: boolean): void {
    this.setAlert(BackupAlert.SettingsDrift, drifting);
  }

  private setAlert(alert: BackupAlert, firing: boolean): void {
    this.alert.set({ alert, severity: SEVERITY[alert] }, firing ? 1 : 0);
  }

  setRepoSize(bytes: number): void {
    this.repoSize.set(bytes);
  }

  /** The running backup, or the last one, took longer than BACKUP_DURATION_ALERT_MINUTES. */
  private durationLong(): boolean {
    const limitMs = this.config.backup.durationAlertMinutes * 60_000;
    const runningMs = this.runningSince ? Date.now() - this.runningSince.getTime() : 0;
    return runningMs > limitMs || this.lastDurationMs > limitMs;
  }
}
