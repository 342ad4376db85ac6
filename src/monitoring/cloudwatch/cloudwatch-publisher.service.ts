import { hostname } from 'node:os';
import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import { Counter, Gauge } from 'prom-client';
import type { AppConfig, CloudWatchConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { MetricsService } from '../metrics.service.js';
import { RegistryConverter, type RegistryMetric, splitBatches } from './metric-datum.js';
import { type MetricSender, WorkerMetricSender } from './metric-sender.js';

export enum CloudWatchMetric {
  Dropped = 'dbu_cloudwatch_dropped_total',
  Sent = 'dbu_cloudwatch_datums_sent_total',
  FailedCalls = 'dbu_cloudwatch_put_failures_total',
  Backlog = 'dbu_cloudwatch_backlog_datums',
}

export enum DropReason {
  /** The backlog reached CLOUDWATCH_MAX_BACKLOG; the oldest datums went. */
  BacklogFull = 'backlog_full',
  /** CloudWatch refused the call for good (a 4xx other than throttling). */
  Rejected = 'rejected',
  /** NaN, ±Infinity or beyond ±2^360: CloudWatch would reject the whole call. */
  InvalidValue = 'invalid_value',
  /** Still queued when the process stopped and the last flush did not get through. */
  Shutdown = 'shutdown',
}

/** How long the last flush at shutdown may take. */
const SHUTDOWN_FLUSH_MS = 5_000;

/**
 * Publishes the registry's metrics to CloudWatch every CLOUDWATCH_INTERVAL_SECONDS
 * (PutMetricData, batched within the API limits). Runs on a timer, never on a request:
 * a slow or unreachable CloudWatch only grows a bounded backlog, whose overflow is
 * dropped oldest-first, counted in dbu_cloudwatch_dropped_total and logged.
 * Every instance publishes its own series (an `instance` dimension) plus the fleet-wide
 * rollups the alarms read (see ROLLUPS).
 */
@Injectable()
export class CloudWatchPublisher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(CloudWatchPublisher.name);
  private readonly config: CloudWatchConfig;
  private readonly converter: RegistryConverter;
  private readonly dropped: Counter<'reason'>;
  private readonly sent: Counter;
  private readonly failedCalls: Counter<'kind'>;
  private readonly backlogGauge: Gauge;
  private readonly warnedInvalid = new Set<string>();
  private readonly warnedTruncated = new Set<string>();
  /** Datums waiting to be sent, oldest first. */
  private backlog: MetricDatum[] = [];
  private sender: MetricSender | null = null;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private abort = new AbortController();
  private collectedTotal = 0;

  constructor(
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.config = config.cloudwatch;
    this.converter = new RegistryConverter({
      service: 'database-unit',
      environment: this.config.environment,
      instance: hostname(),
    });
    const registers = [metrics.registry];
    this.dropped = new Counter({
      name: CloudWatchMetric.Dropped,
      help: 'Metric datums never delivered to CloudWatch, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.sent = new Counter({
      name: CloudWatchMetric.Sent,
      help: 'Metric datums accepted by CloudWatch',
      registers,
    });
    this.failedCalls = new Counter({
      name: CloudWatchMetric.FailedCalls,
      help: 'PutMetricData calls that failed after their retries (retryable: kept in the backlog)',
      labelNames: ['kind'],
      registers,
    });
    // Every reason and kind from the start: a drop shows as a change, not as a new series.
    for (const reason of Object.values(DropReason)) {
      this.dropped.inc({ reason }, 0);
    }
    for (const kind of ['retryable', 'rejected']) {
      this.failedCalls.inc({ kind }, 0);
    }
    this.backlogGauge = new Gauge({
      name: CloudWatchMetric.Backlog,
      help: 'Metric datums waiting for CloudWatch',
      registers,
      collect: () => this.backlogGauge.set(this.backlog.length),
    });
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** Datums waiting in the backlog. */
  get pending(): number {
    return this.backlog.length;
  }

  /** Datums ever collected: each is sent, dropped (counted) or pending. */
  get collected(): number {
    return this.collectedTotal;
  }

  onApplicationBootstrap(): void {
    if (this.config.enabled) {
      this.start();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /** Starts the timer; each tick collects, then flushes unless a flush is still running. */
  start(sender: MetricSender = new WorkerMetricSender(this.config)): void {
    if (this.timer) {
      return;
    }
    this.sender = sender;
    this.abort = new AbortController();
    this.timer = setInterval(() => this.tick(), this.config.intervalMs);
    this.timer.unref();
    this.logger.log(
      {
        namespace: this.config.namespace,
        region: this.config.region,
        intervalMs: this.config.intervalMs,
      },
      'cloudwatch publisher started',
    );
  }

  /** Stops the timer, makes one bounded last attempt, counts what is left as dropped. */
  async stop(): Promise<void> {
    if (!this.timer || !this.sender) {
      return;
    }
    clearInterval(this.timer);
    this.timer = null;
    const deadline = setTimeout(() => this.abort.abort(), SHUTDOWN_FLUSH_MS);
    try {
      await this.flushing;
      await this.collect();
      await this.flush();
    } finally {
      clearTimeout(deadline);
    }
    if (this.backlog.length > 0) {
      this.drop(DropReason.Shutdown, this.backlog.length);
      this.backlog = [];
    }
    await this.sender.destroy();
    this.sender = null;
  }

  /** The timer's callback: returns at once; the work runs in the background. */
  tick(): void {
    this.publish().catch((err: unknown) =>
      this.logger.error({ error: (err as Error).message }, 'cloudwatch publish failed'),
    );
  }

  /** Collects one sample into the backlog and flushes it (joins a flush already running). */
  async publish(): Promise<void> {
    await this.collect();
    await this.flush();
  }

  /** Converts the registry into datums at the end of the backlog (bounded). */
  async collect(): Promise<void> {
    const snapshot =
      (await this.metrics.registry.getMetricsAsJSON()) as unknown as RegistryMetric[];
    const { datums, invalid, truncatedLabels } = this.converter.convert(snapshot, new Date());
    if (invalid.length > 0) {
      this.drop(DropReason.InvalidValue, invalid.length);
      for (const { metric, value } of invalid) {
        if (!this.warnedInvalid.has(metric)) {
          this.warnedInvalid.add(metric);
          this.logger.warn(
            { metric, value },
            'cloudwatch: sample not publishable (counted once per sample)',
          );
        }
      }
    }
    for (const label of truncatedLabels) {
      if (!this.warnedTruncated.has(label)) {
        this.warnedTruncated.add(label);
        this.logger.warn({ label }, 'cloudwatch: label beyond 30 dimensions not sent');
      }
    }
    this.collectedTotal += datums.length;
    for (const datum of datums) {
      this.backlog.push(datum);
    }
    this.enforceCap();
  }

  /** Sends the backlog in batches; a retryable failure keeps the rest for the next tick. */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.drain().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async drain(): Promise<void> {
    const sender = this.sender;
    if (!sender) {
      return;
    }
    while (this.backlog.length > 0 && !this.abort.signal.aborted) {
      const [batch] = splitBatches(this.backlog);
      // Taken out first: a collect during the call may trim the backlog's head.
      this.backlog.splice(0, batch.length);
      try {
        await sender.send(this.config.namespace, batch, this.abort.signal);
        this.sent.inc(batch.length);
      } catch (err) {
        if (isRetryable(err)) {
          this.failedCalls.inc({ kind: 'retryable' });
          this.backlog.unshift(...batch);
          this.enforceCap();
          this.logger.warn(
            {
              error: describe(err),
              backlog: this.backlog.length,
              attempts: this.config.maxAttempts,
            },
            'cloudwatch unreachable or throttling: datums kept for the next interval',
          );
          return;
        }
        this.failedCalls.inc({ kind: 'rejected' });
        this.drop(DropReason.Rejected, batch.length);
        this.logger.error(
          { error: describe(err), datums: batch.length },
          'cloudwatch rejected a PutMetricData call: its datums are dropped',
        );
      }
    }
  }

  private enforceCap(): void {
    const excess = this.backlog.length - this.config.maxBacklog;
    if (excess > 0) {
      this.backlog.splice(0, excess);
      this.drop(DropReason.BacklogFull, excess);
      this.logger.warn(
        { dropped: excess, cap: this.config.maxBacklog },
        'cloudwatch backlog full: oldest datums dropped',
      );
    }
  }

  private drop(reason: DropReason, count: number): void {
    this.dropped.inc({ reason }, count);
  }
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string };
  return `${e.name ?? 'Error'}: ${e.message ?? String(err)}`;
}

/** Throttling, 5xx, timeouts and network errors are worth another interval; the rest is not. */
export function isRetryable(err: unknown): boolean {
  const e = err as {
    name?: string;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (e.$retryable) {
    return true;
  }
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) {
    return true; // no answer at all: connection refused, reset, timeout, abort
  }
  return (
    status === 429 ||
    status >= 500 ||
    /Throttl|TooManyRequests|RequestLimitExceeded|Timeout/i.test(e.name ?? '')
  );
}
