import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { previousMonth } from './compliance-report.js';
import { ComplianceService } from './compliance.service.js';

export enum ComplianceJob {
  Report = 'compliance-report',
}

/** What the job logs and keeps in its run history: counts and digests, no personal data. */
export interface ComplianceJobSummary {
  month: string;
  sha256: string;
  exportRequests: number;
  deletionRequests: number;
  consentChanges: number;
  auditEvents: number;
  auditValid: boolean;
}

/** Monthly, leader-only: builds (or rebuilds) the previous UTC month's compliance report. */
@Injectable()
export class ComplianceReportJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(ComplianceReportJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly compliance: ComplianceService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.scheduler.addCronJob(
      ComplianceJob.Report,
      CronJob.from({
        cronTime: this.config.gdpr.complianceReportCron,
        // NOTE: "the previous month" is a UTC month; a tick at 05:00 local time on
        // the 1st would still fall in the month being reported east of UTC.
        timeZone: 'UTC',
        onTick: () => void this.run(),
        start: true,
      }),
    );
  }

  run(now = new Date()): Promise<JobOutcome> {
    return this.leadership.runExclusive(ComplianceJob.Report, AdvisoryLock.ComplianceReport, () =>
      this.buildPreviousMonth(now),
    );
  }

  async buildPreviousMonth(now: Date): Promise<ComplianceJobSummary> {
    const report = await this.compliance.build(previousMonth(now), now);
    const summary: ComplianceJobSummary = {
      month: report.month,
      sha256: report.sha256,
      exportRequests: report.exportRequests.total,
      deletionRequests: report.deletionRequests.total,
      consentChanges: report.consent.reduce((n, c) => n + c.grants + c.withdrawals, 0),
      auditEvents: report.auditLogIntegrity.eventsThisMonth,
      auditValid: report.auditLogIntegrity.valid,
    };
    if (summary.auditValid) {
      this.logger.log(summary, 'compliance report built');
    } else {
      this.logger.error(
        { ...summary, firstBroken: report.auditLogIntegrity.firstBroken },
        'compliance report built: audit chain verification FAILED',
      );
    }
    return summary;
  }
}
