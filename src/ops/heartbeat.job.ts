import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService, JobOutcome } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { HeartbeatRepository } from './heartbeat.repository.js';
import { JobName } from './jobs.js';

/**
 * Leader-only: writes the heartbeat row every JOB_CANARY_CRON tick, so replica lag
 * in seconds stays measurable while the primary is idle (pt-heartbeat's idea).
 */
@Injectable()
export class HeartbeatJob implements OnApplicationBootstrap {
  private readonly logger = new Logger(HeartbeatJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerRegistry,
    private readonly leadership: JobLeadershipService,
    private readonly heartbeats: HeartbeatRepository,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      this.logger.log('scheduled jobs disabled (JOBS_ENABLED=false)');
      return;
    }
    const job = CronJob.from({
      cronTime: this.config.jobs.canaryCron,
      onTick: () => {
        void this.run();
      },
      start: true,
    });
    this.scheduler.addCronJob(JobName.Heartbeat, job);
  }

  run(): Promise<JobOutcome> {
    return this.leadership.runExclusive(JobName.Heartbeat, AdvisoryLock.JobHeartbeat, async () => {
      await this.heartbeats.beat(this.leadership.instanceId);
      return { instanceId: this.leadership.instanceId };
    });
  }
}
