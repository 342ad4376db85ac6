import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import pg from 'pg';
import type { AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { JobLeadershipService } from '../../database/job-leadership.service.js';
import { AdvisoryLock } from '../../database/locks.js';
import { closeWithin, directClientConfig } from '../../database/pg-direct.js';
import { TopologyService } from '../../database/topology.service.js';
import { InsightsHistoryRepository } from './insights-history.repository.js';
import { readActiveSessions, readStatements, StatementsUnavailableError } from './live-activity.js';
import { StatementSnapshot, statementDeltas } from './statement-deltas.js';
import { minuteOf, WaitAccumulator } from './wait-accumulator.js';

export const INSIGHTS_APPLICATION_NAME = 'database-unit:insights';

export type SnapshotOutcome =
  | { stored: number; baseline: false }
  /** The first snapshot of a leader: nothing to subtract from yet. */
  | { stored: 0; baseline: true }
  | { unavailable: string };

/**
 * Performance insights' collector, on the insights leader only (advisory lock 910 on the
 * writer, taken on the job-leadership session like the monitoring sampler's):
 * - every INSIGHTS_SAMPLE_INTERVAL_MS, the active sessions of pg_stat_activity (its own
 *   left out), summed per minute in memory and added to the history when the minute
 *   turns;
 * - every INSIGHTS_SNAPSHOT_SECONDS, pg_stat_statements: the delta since the previous
 *   snapshot is stored (the first snapshot of a leader is only a baseline), then history
 *   older than INSIGHTS_RETENTION_DAYS is pruned.
 * Reads use one direct connection to the writer, kept open (a connection per second
 * would cost more than the sample). A failure is logged once per outage and never
 * throws into the app; pg_stat_statements missing stops top SQL only.
 */
@Injectable()
export class InsightsSamplerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(InsightsSamplerService.name);
  private timer?: NodeJS.Timeout;
  private inFlight: Promise<void> | null = null;
  private client: pg.Client | null = null;
  private clientNode: string | null = null;
  private readonly accumulator = new WaitAccumulator();
  private baseline: StatementSnapshot | null = null;
  private lastSnapshotAt = 0;
  private flushedMinute = 0;
  private collecting = false;
  private readonly failing = new Set<string>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly topology: TopologyService,
    private readonly leadership: JobLeadershipService,
    private readonly history: InsightsHistoryRepository,
  ) {}

  /** Whether this instance collected on its last tick. */
  get leading(): boolean {
    return this.collecting;
  }

  onApplicationBootstrap(): void {
    const ms = this.config.insights.sampleIntervalMs;
    if (ms === 0) {
      this.logger.log('insights sampler off (INSIGHTS_SAMPLE_INTERVAL_MS=0)');
      return;
    }
    this.timer = setInterval(() => void this.tick(), ms);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
    await this.closeClient();
  }

  /** One timer tick; a tick still running makes the next one a no-op. */
  tick(): Promise<void> {
    this.inFlight ??= this.round().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async round(): Promise<void> {
    if (!(await this.lead())) {
      if (this.collecting) {
        this.collecting = false;
        this.baseline = null;
        this.accumulator.drain();
        await this.closeClient();
        this.logger.log('not the insights leader: sampling stopped');
      }
      return;
    }
    this.collecting = true;
    const now = new Date();
    await this.guard('activity', () => this.sampleWaits(now));
    if (minuteOf(now).getTime() !== this.flushedMinute) {
      await this.guard('history', () => this.flush());
      this.flushedMinute = minuteOf(now).getTime();
    }
    if (now.getTime() - this.lastSnapshotAt >= this.config.insights.snapshotSeconds * 1000) {
      this.lastSnapshotAt = now.getTime();
      await this.guard('statements', async () => {
        await this.snapshotStatements();
        await this.prune(now);
      });
    }
  }

  private async lead(): Promise<boolean> {
    if (!this.topology.isHealthy(this.topology.writerName)) {
      return false;
    }
    return this.leadership.tryLead(AdvisoryLock.InsightsSampler);
  }

  /** One pg_stat_activity sample into the minute's sums; the number of active sessions. */
  async sampleWaits(at = new Date()): Promise<number> {
    const sessions = await this.withClient(readActiveSessions);
    this.accumulator.add(at, sessions);
    return sessions.length;
  }

  /** Adds the minutes summed so far to the history. */
  async flush(): Promise<void> {
    const { samples, waits } = this.accumulator.drain();
    await this.history.addWaitSamples(samples, waits);
  }

  /**
   * Reads pg_stat_statements and stores the delta since the previous snapshot (the most
   * time-consuming INSIGHTS_MAX_STATEMENTS_PER_SNAPSHOT statements that ran).
   */
  async snapshotStatements(): Promise<SnapshotOutcome> {
    let current: StatementSnapshot;
    try {
      current = await this.withClient(readStatements);
    } catch (err) {
      if (err instanceof StatementsUnavailableError) {
        this.baseline = null;
        this.warnOnce('statements-unavailable', { reason: err.reason }, 'top SQL not collected');
        return { unavailable: err.reason };
      }
      throw err;
    }
    this.recovered('statements-unavailable');
    const previous = this.baseline;
    this.baseline = current;
    if (!previous) {
      return { stored: 0, baseline: true };
    }
    const deltas = statementDeltas(
      previous,
      current,
      this.config.insights.maxStatementsPerSnapshot,
    );
    const seconds = (current.takenAt.getTime() - previous.takenAt.getTime()) / 1000;
    await this.history.saveStatementDeltas(current.takenAt, seconds, deltas);
    return { stored: deltas.length, baseline: false };
  }

  /** Deletes history older than INSIGHTS_RETENTION_DAYS. */
  prune(now = new Date()): Promise<Record<string, number>> {
    const before = new Date(now.getTime() - this.config.insights.retentionDays * 86_400_000);
    return this.history.prune(before);
  }

  /** Runs `fn` on the sampler's connection to the current writer, (re)opened as needed. */
  private async withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const writer = this.topology.snapshot().find((n) => n.name === this.topology.writerName);
    if (!writer) {
      throw new Error('no writer known');
    }
    if (this.client && this.clientNode !== writer.name) {
      await this.closeClient();
    }
    if (!this.client) {
      const timeoutMs = this.config.monitoring.statementTimeoutMs;
      const client = new pg.Client({
        ...directClientConfig(this.config.database, writer.lastProbe.address, {
          timeoutMs: Math.max(timeoutMs, this.config.database.connectTimeoutMs),
          applicationName: INSIGHTS_APPLICATION_NAME,
        }),
        statement_timeout: timeoutMs,
      });
      // NOTE: an error event on an idle client must not crash the process.
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (err) {
        await closeWithin(client, 1_000);
        throw err;
      }
      this.client = client;
      this.clientNode = writer.name;
    }
    try {
      return await fn(this.client);
    } catch (err) {
      // A broken connection is replaced on the next call; a failed query costs nothing.
      if (!(err instanceof StatementsUnavailableError)) {
        await this.closeClient();
      }
      throw err;
    }
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.clientNode = null;
    if (client) {
      await closeWithin(client, 1_000);
    }
  }

  private async guard(target: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
      this.recovered(target);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      this.warnOnce(
        target,
        { target, error },
        'insights sample failed (logged once until it recovers)',
      );
    }
  }

  private warnOnce(key: string, detail: Record<string, unknown>, msg: string): void {
    if (this.failing.has(key)) {
      this.logger.debug(detail, msg);
      return;
    }
    this.failing.add(key);
    this.logger.warn(detail, msg);
  }

  private recovered(key: string): void {
    if (this.failing.delete(key)) {
      this.logger.log({ key }, 'insights sampling recovered');
    }
  }
}
