import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectDataSource } from '@nestjs/typeorm';
import { CronJob } from 'cron';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { expiredPartitions, monthPartition } from './audit-partitions.js';
import { AuditService } from './audit.service.js';

export enum AuditJob {
  Maintenance = 'audit-maintenance',
}

const MONTHS_AHEAD = 2;

/**
 * Daily, leader-only: creates the coming months' partitions, drops partitions older
 * than AUDIT_RETENTION_YEARS (the only deletion the audit log knows), verifies the
 * chain and publishes its digest.
 */
@Injectable()
export class AuditMaintenanceJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuditMaintenanceJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly audit: AuditService,
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

  run(now = new Date()): Promise<JobOutcome> {
    return this.leadership.runExclusive(
      AuditJob.Maintenance,
      AdvisoryLock.JobAuditMaintenance,
      () => this.maintain(now),
    );
  }

  async maintain(
    now: Date,
  ): Promise<{ created: string[]; dropped: string[]; valid: boolean; digest: unknown }> {
    const created: string[] = [];
    for (let i = 0; i <= MONTHS_AHEAD; i++) {
      const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
      const p = monthPartition(d.getUTCFullYear(), d.getUTCMonth() + 1);
      const exists: unknown[] = await this.dataSource.query(
        `SELECT 1 FROM pg_class WHERE relname = $1`,
        [p.name],
      );
      if (exists.length === 0) {
        // Identifiers and bounds come from integers, never from input.
        await this.dataSource.query(
          `CREATE TABLE ${p.name} PARTITION OF audit_logs FOR VALUES FROM ('${p.from}') TO ('${p.to}')`,
        );
        created.push(p.name);
      }
    }
    const parts: Array<{ name: string }> = await this.dataSource.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_logs'::regclass`,
    );
    const dropped = expiredPartitions(
      parts.map((p) => p.name),
      now,
      this.config.audit.retentionYears,
    );
    for (const name of dropped) {
      await this.dataSource.query(`ALTER TABLE audit_logs DETACH PARTITION ${name}`);
      await this.dataSource.query(`DROP TABLE ${name}`);
      this.logger.warn(
        { partition: name, retentionYears: this.config.audit.retentionYears },
        'dropped an expired audit partition',
      );
    }
    const report = await this.audit.verify();
    if (!report.valid) {
      this.logger.error({ firstBroken: report.firstBroken }, 'audit chain verification FAILED');
    }
    const digest = await this.audit.publishDigest();
    return { created, dropped, valid: report.valid, digest };
  }
}
