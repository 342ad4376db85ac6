import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { AuditService } from '../audit/audit.service.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { EXPORT_STORE } from './export-store.js';
import type { ExportStore } from './export-store.js';
import { fileNameOf } from './export.service.js';
import { ExportRepository } from './export.repository.js';

export const EXPORT_PURGE_JOB = 'gdpr-export-purge';
const BATCH = 200;

/**
 * Daily, leader-only: deletes export files past GDPR_EXPORT_RETENTION_DAYS (spec:
 * 30) and their wrapped keys, marks them expired (audited), and deletes orphan
 * files whose export row is gone (an erasure that crashed before its clean-up).
 */
@Injectable()
export class ExportPurgeJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(ExportPurgeJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(EXPORT_STORE) private readonly store: ExportStore,
    private readonly exports: ExportRepository,
    private readonly router: ReadRouterService,
    private readonly audit: AuditService,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.scheduler.addCronJob(
      EXPORT_PURGE_JOB,
      CronJob.from({
        cronTime: this.config.gdpr.exportPurgeCron,
        onTick: () => void this.run(),
        start: true,
      }),
    );
  }

  run(now = new Date()): Promise<JobOutcome> {
    return this.leadership.runExclusive(EXPORT_PURGE_JOB, AdvisoryLock.ExportPurge, () =>
      this.purge(now),
    );
  }

  async purge(now: Date): Promise<{ purged: number; orphans: number }> {
    let purged = 0;
    for (;;) {
      const batch = await this.exports.expired(now, BATCH);
      for (const e of batch) {
        await this.store.delete(fileNameOf(e.id));
        await this.router.write(async (m) => {
          await this.exports.markPurged(m, e.id);
          await this.audit.append(m, {
            eventType: 'export_requests',
            subjectId: e.userId,
            resource: `export:${e.id}`,
            action: 'purged',
          });
        });
        purged += 1;
      }
      if (batch.length < BATCH) {
        break;
      }
    }
    const files = await this.store.list();
    const live = await this.exports.liveIds(files.map((f) => f.replace(/\.enc$/, '')));
    let orphans = 0;
    for (const f of files) {
      if (!live.has(f.replace(/\.enc$/, ''))) {
        await this.store.delete(f);
        orphans += 1;
      }
    }
    this.logger.log(
      { purged, orphans, retentionDays: this.config.gdpr.exportRetentionDays },
      'export purge done',
    );
    return { purged, orphans };
  }
}
