import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { AlertChannels } from './alert-channels.js';
import { AlertChannel, AlertingRepository } from './alerting.repository.js';
import { AlertingMetrics } from './alerting.metrics.js';

const BATCH = 20;

/** Exponential backoff from the delivery interval, capped; attempts counts from 1. */
export function backoffMs(attempts: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempts - 1, 30));
}

/**
 * Delivers the outbox on the monitoring leader, each channel on its own (a channel that is
 * down delays only its own messages). A message is marked delivered in the transaction
 * that holds its row lock; a failed attempt is retried after a growing delay, forever: a
 * channel that comes back gets everything it missed, in order.
 */
@Injectable()
export class AlertDeliveryService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AlertDeliveryService.name);
  private timer?: NodeJS.Timeout;
  private readonly inFlight = new Map<AlertChannel, Promise<void>>();
  private readonly down = new Set<AlertChannel>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly repo: AlertingRepository,
    private readonly channels: AlertChannels,
    private readonly leadership: JobLeadershipService,
    private readonly metrics: AlertingMetrics,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.alerting.enabled) {
      return;
    }
    this.timer = setInterval(() => void this.deliver(), this.config.alerting.delivery.intervalMs);
    this.timer.unref();
  }

  /** Lets the channel rounds in flight finish (they never throw) before the DataSource closes. */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight.values());
  }

  /**
   * One delivery round: every channel not still busy with its previous round (a channel
   * waiting out a timeout never holds up the other), then the backlog gauge. Never throws.
   */
  async deliver(): Promise<void> {
    const channels = this.channels.configured;
    if (channels.length === 0) {
      return;
    }
    if (!(await this.leadership.tryLead(AdvisoryLock.MonitoringSampler))) {
      this.metrics.backlog.reset();
      return;
    }
    await Promise.all(channels.map((channel) => this.channelRound(channel)));
    try {
      const backlog = await this.repo.backlog();
      for (const channel of channels) {
        this.metrics.backlog.set({ channel }, backlog[channel]);
      }
    } catch (err) {
      this.logger.debug({ error: (err as Error).message }, 'outbox backlog not read');
    }
  }

  /** A channel's round in flight is shared by concurrent callers. */
  private channelRound(channel: AlertChannel): Promise<void> {
    let round = this.inFlight.get(channel);
    if (!round) {
      round = this.deliverChannel(channel).finally(() => this.inFlight.delete(channel));
      this.inFlight.set(channel, round);
    }
    return round;
  }

  private async deliverChannel(channel: AlertChannel): Promise<void> {
    const { intervalMs, maxBackoffMs } = this.config.alerting.delivery;
    try {
      const { delivered, failed } = await this.repo.deliverDue(
        channel,
        BATCH,
        async (row) => {
          const error = await this.channels.send(row);
          if (error === null) {
            this.metrics.delivered.inc({ channel });
            this.logger.log(
              { channel, outboxId: row.id, attempts: row.attempts + 1 },
              'alert notification delivered',
            );
          } else {
            this.metrics.deliveryFailures.inc({ channel });
            this.logger.warn(
              { channel, outboxId: row.id, attempts: row.attempts + 1, error },
              'alert notification not delivered; will retry',
            );
          }
          return error;
        },
        (attempts) => backoffMs(attempts, intervalMs, maxBackoffMs),
      );
      if (failed > 0) {
        this.down.add(channel);
      } else if (delivered > 0 && this.down.delete(channel)) {
        this.logger.log({ channel }, 'alert channel delivering again');
      }
    } catch (err) {
      this.logger.warn({ channel, error: (err as Error).message }, 'alert outbox round failed');
    }
  }
}
