import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { AlertRule } from '../config/alerting.config.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import { AlertChannels } from './alert-channels.js';
import { AlertState, INITIAL_STATE, NotificationKind, step } from './alert-state.js';
import {
  AlertChannel,
  AlertStateRow,
  AlertingRepository,
  NotificationPayload,
  SilenceRow,
} from './alerting.repository.js';
import { AlertingMetrics } from './alerting.metrics.js';
import { Baseline, readRuleValue } from './metric-reader.js';
import { silenceMatches } from './silences.js';

export type EvaluationReport =
  | { leader: false }
  | { leader: true; failed: boolean; states: Record<string, string>; notifications: number };

type Notification = NotificationPayload['alerts'][number];

/**
 * Evaluates the alert rules every ALERTING_EVAL_INTERVAL_MS on the monitoring leader (the
 * instance holding the sampler's advisory lock, so it also holds the cluster-wide
 * figures). One evaluation is one transaction: it reads the stored states, steps each
 * rule's state machine, writes the new states and queues one grouped message per channel
 * in the outbox. A new leader continues from the stored states: it neither forgets a
 * firing alert nor announces it again.
 */
@Injectable()
export class AlertEvaluatorService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AlertEvaluatorService.name);
  private timer?: NodeJS.Timeout;
  private inFlight: Promise<EvaluationReport> | null = null;
  private readonly baselines = new Map<string, Baseline>();
  private wasLeader = false;
  private failing = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly repo: AlertingRepository,
    private readonly channels: AlertChannels,
    private readonly leadership: JobLeadershipService,
    private readonly metrics: MetricsService,
    private readonly alertMetrics: AlertingMetrics,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.alerting.enabled) {
      this.logger.log('alerting off (ALERTING_ENABLED=false)');
      return;
    }
    this.timer = setInterval(() => void this.evaluate(), this.config.alerting.evalIntervalMs);
    this.timer.unref();
  }

  /** Lets an evaluation in flight finish (it never throws) before the DataSource closes. */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
  }

  /** One evaluation; concurrent callers share the one in flight. Never throws. */
  evaluate(): Promise<EvaluationReport> {
    this.inFlight ??= this.round()
      .catch((err: unknown): EvaluationReport => {
        this.alertMetrics.evaluations.inc({ outcome: 'failed' });
        const error = err instanceof Error ? err.message : String(err);
        if (!this.failing) {
          this.logger.warn({ error }, 'alert evaluation failed (logged once until it recovers)');
        }
        this.failing = true;
        return { leader: true, failed: true, states: {}, notifications: 0 };
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  private async round(): Promise<EvaluationReport> {
    if (!(await this.leadership.tryLead(AdvisoryLock.MonitoringSampler))) {
      if (this.wasLeader) {
        // Another instance evaluates now; windowed baselines start over if this one returns.
        this.alertMetrics.firing.reset();
        this.baselines.clear();
        this.wasLeader = false;
      }
      this.alertMetrics.evaluations.inc({ outcome: 'not-leader' });
      return { leader: false };
    }
    this.wasLeader = true;
    const now = new Date();
    const values = new Map<string, number | null>();
    for (const rule of this.config.alerting.rules) {
      values.set(rule.name, await this.read(rule, now));
    }
    const result = await this.repo.evaluation(async (tx) => {
      const stored = await tx.states();
      const silences = await tx.activeSilences(now);
      const outbox = new Map<AlertChannel, Notification[]>();
      const states: Record<string, string> = {};
      for (const rule of this.config.alerting.rules) {
        const prev: AlertState = stored.get(rule.name) ?? INITIAL_STATE;
        const { next, notify } = step(prev, {
          value: values.get(rule.name) ?? null,
          comparison: rule.comparison,
          threshold: rule.threshold,
          forMs: rule.forSeconds * 1000,
          renotifyMs: this.config.alerting.renotifyMs,
          silenced: isSilenced(rule, silences),
          now,
        });
        states[rule.name] = next.state;
        await tx.saveState(this.row(rule, next, now));
        if (notify) {
          for (const channel of this.channels.route(rule.severity)) {
            const list = outbox.get(channel) ?? [];
            list.push(notification(rule, next, notify));
            outbox.set(channel, list);
          }
        }
      }
      await tx.deleteStatesExcept(this.config.alerting.rules.map((r) => r.name));
      let queued = 0;
      for (const [channel, alerts] of outbox) {
        await tx.enqueue(channel, message(alerts));
        queued++;
      }
      return { states, notifications: queued };
    });
    this.publish(result.states);
    this.alertMetrics.evaluations.inc({ outcome: 'evaluated' });
    if (this.failing) {
      this.logger.log('alert evaluation recovered');
      this.failing = false;
    }
    return { leader: true, failed: false, ...result };
  }

  /** A metric whose collect callback throws has no value (one rule, not the round). */
  private async read(rule: AlertRule, now: Date): Promise<number | null> {
    try {
      return await readRuleValue(this.metrics.registry, rule, this.baselines, now.getTime());
    } catch (err) {
      this.logger.warn(
        { rule: rule.name, metric: rule.metric, error: (err as Error).message },
        'alert rule metric not readable',
      );
      return null;
    }
  }

  private row(rule: AlertRule, s: AlertState, now: Date): AlertStateRow {
    return {
      ...s,
      rule: rule.name,
      severity: rule.severity,
      threshold: rule.threshold,
      comparison: rule.comparison,
      evaluatedAt: now,
      evaluatedBy: this.leadership.instanceId,
    };
  }

  private publish(states: Record<string, string>): void {
    for (const rule of this.config.alerting.rules) {
      this.alertMetrics.firing.set(
        { alert: rule.name, severity: rule.severity },
        states[rule.name] === 'firing' ? 1 : 0,
      );
    }
  }
}

function isSilenced(rule: AlertRule, silences: SilenceRow[]): boolean {
  return silences.some((s) =>
    silenceMatches(s.matchers, { alertname: rule.name, severity: rule.severity }),
  );
}

function notification(rule: AlertRule, s: AlertState, kind: NotificationKind): Notification {
  const since = kind === 'resolved' ? s.resolvedAt : s.firingSince;
  return {
    alert: rule.name,
    severity: rule.severity,
    status: kind,
    value: s.value,
    comparison: rule.comparison,
    threshold: rule.threshold,
    summary: rule.summary,
    since: (since ?? new Date()).toISOString(),
  };
}

/** One message for every notification of one evaluation on one channel. */
export function message(alerts: Notification[]): NotificationPayload {
  const firing = alerts.filter((a) => a.status === 'firing');
  const resolved = alerts.filter((a) => a.status === 'resolved');
  const parts = [
    firing.length > 0 ? `FIRING ${firing.length}: ${firing.map((a) => a.alert).join(', ')}` : '',
    resolved.length > 0
      ? `RESOLVED ${resolved.length}: ${resolved.map((a) => a.alert).join(', ')}`
      : '',
  ].filter((p) => p !== '');
  const text = alerts
    .map((a) =>
      [
        `[${a.status.toUpperCase()}] ${a.alert} (severity ${a.severity})`,
        `  ${a.summary}`,
        `  value: ${a.value === null ? 'n/a' : a.value} (condition: ${a.comparison} ${a.threshold})`,
        `  ${a.status === 'resolved' ? 'resolved at' : 'firing since'}: ${a.since}`,
      ].join('\n'),
    )
    .join('\n\n');
  return {
    subject: `[database-unit] ${parts.join('; ')}`,
    text: `${text}\n\nRunbook: docs/monitoring.md#alerting\n`,
    alerts,
  };
}
