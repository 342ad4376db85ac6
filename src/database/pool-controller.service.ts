import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import pg from 'pg';
import { Counter, Gauge, Histogram } from 'prom-client';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import { DatabaseMetric } from './database.metrics.js';
import { JobLeadershipService } from './job-leadership.service.js';
import { AdvisoryLock } from './locks.js';
import { PgBouncerPoolStats, readPoolStats, withPgBouncerAdmin } from './pgbouncer-admin.js';
import { ReadRouterService } from './read-router.service.js';

export interface ScalingEvent {
  at: string;
  target: string;
  from: number;
  to: number;
  direction: 'up' | 'down';
  utilization: number;
  reason: string;
}

export interface PoolView {
  label: string;
  size: number;
  active: number;
  idle: number;
  waiting: number;
  utilization: number;
  acquireWaitMs: { last: number; max: number };
}

export interface PgBouncerView {
  defaultPoolSize: number;
  clientsActive: number;
  clientsWaiting: number;
  maxWaitSeconds: number;
  serverActive: number;
  utilization: number;
}

const SAMPLE_MS = 250;

/**
 * Adaptive pool sizing (spec: every evaluation interval, +5 at utilization ≥ 0.8,
 * −2 at ≤ 0.3, within min/max, never beyond DB_POOL_MAX_CONNECTIONS_SHARE of the
 * server's max_connections). Applies to this instance's pools (`pg.Pool.options.max`)
 * and, on the leader only, to PgBouncer's `default_pool_size` through its admin
 * console (`SHOW POOLS` / `SHOW CONFIG` / `SET`). Utilization, waits, sizes, scaling
 * events and the spec's alerts are metrics.
 */
@Injectable()
export class PoolControllerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(PoolControllerService.name);
  private readonly samples = new Map<string, number[]>();
  private readonly waits = new Map<string, { last: number; max: number }>();
  private readonly events: ScalingEvent[] = [];
  private pgbouncer: PgBouncerView | null = null;
  private cap: number | null = null;
  private sampler?: NodeJS.Timeout;
  private evaluator?: NodeJS.Timeout;
  private evaluating = false;

  private readonly size: Gauge<'pool'>;
  private readonly utilization: Gauge<'pool'>;
  private readonly waitingGauge: Gauge<'pool'>;
  private readonly activeGauge: Gauge<'pool'>;
  private readonly waitSeconds: Gauge<'pool'>;
  private readonly pgbClientsActive: Gauge;
  private readonly acquire: Histogram<'pool'>;
  private readonly scaling: Counter<'pool' | 'direction'>;
  private readonly failures: Counter<'pool'>;
  private readonly alerts: Gauge<'alert'>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly router: ReadRouterService,
    private readonly leadership: JobLeadershipService,
    metrics: MetricsService,
  ) {
    const registers = [metrics.registry];
    this.size = new Gauge({
      name: 'dbu_pool_size',
      help: 'Pool size (max connections) per pool',
      labelNames: ['pool'],
      registers,
    });
    this.utilization = new Gauge({
      name: DatabaseMetric.PoolUtilization,
      help: 'Busy share of the pool (0-1), last sample',
      labelNames: ['pool'],
      registers,
    });
    this.waitingGauge = new Gauge({
      name: 'dbu_pool_waiting',
      help: 'Requests waiting for a connection',
      labelNames: ['pool'],
      registers,
    });
    this.activeGauge = new Gauge({
      name: DatabaseMetric.PoolActiveConnections,
      help: 'Connections to PostgreSQL in use: application pools (checked out), PgBouncer (sv_active of its entries)',
      labelNames: ['pool'],
      registers,
    });
    this.waitSeconds = new Gauge({
      name: DatabaseMetric.PoolWaitSeconds,
      help: 'Connection wait: application pools, the last acquisition; PgBouncer, the longest current client wait (maxwait)',
      labelNames: ['pool'],
      registers,
    });
    this.pgbClientsActive = new Gauge({
      name: DatabaseMetric.PgBouncerClientsActive,
      help: "Client connections linked to a server connection on the service's PgBouncer entries (cl_active)",
      registers,
    });
    this.acquire = new Histogram({
      name: 'dbu_pool_acquire_seconds',
      help: 'Time to get a pooled connection',
      labelNames: ['pool'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.scaling = new Counter({
      name: 'dbu_pool_scaling_events_total',
      help: 'Pool size changes',
      labelNames: ['pool', 'direction'],
      registers,
    });
    this.failures = new Counter({
      name: 'dbu_pool_scaling_failures_total',
      help: 'Pool size changes that failed',
      labelNames: ['pool'],
      registers,
    });
    this.alerts = new Gauge({
      name: 'dbu_pool_alert',
      help: 'Spec alerts: utilization_high (> 0.8), wait_high (> DB_POOL_ALERT_WAIT_MS), scaling_failure',
      labelNames: ['alert'],
      registers,
    });
    this.router.onAcquire = (label, seconds) => {
      this.acquire.observe({ pool: label }, seconds);
      const w = this.waits.get(label) ?? { last: 0, max: 0 };
      w.last = seconds * 1000;
      w.max = Math.max(w.max, w.last);
      this.waits.set(label, w);
    };
  }

  get control(): AppConfig['database']['poolControl'] {
    return this.config.database.poolControl;
  }

  onApplicationBootstrap(): void {
    if (this.control.evalIntervalMs === 0) {
      return;
    }
    this.sampler = setInterval(
      () => this.sample(),
      Math.min(SAMPLE_MS, this.control.evalIntervalMs),
    );
    this.sampler.unref();
    this.evaluator = setInterval(() => void this.evaluate(), this.control.evalIntervalMs);
    this.evaluator.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.sampler);
    clearInterval(this.evaluator);
  }

  view(): {
    pools: PoolView[];
    pgbouncer: PgBouncerView | null;
    events: ScalingEvent[];
    cap: number | null;
  } {
    return {
      pools: this.router.allPools().map(({ label, pool }) => {
        const active = pool.totalCount - pool.idleCount;
        return {
          label,
          size: maxOf(pool),
          active,
          idle: pool.idleCount,
          waiting: pool.waitingCount,
          utilization: utilizationOf(pool),
          acquireWaitMs: this.waits.get(label) ?? { last: 0, max: 0 },
        };
      }),
      pgbouncer: this.pgbouncer,
      events: [...this.events],
      cap: this.cap,
    };
  }

  private sample(): void {
    let high = false;
    for (const { label, pool } of this.router.allPools()) {
      const u = utilizationOf(pool);
      const list = this.samples.get(label) ?? [];
      list.push(u);
      this.samples.set(label, list);
      this.size.set({ pool: label }, maxOf(pool));
      this.utilization.set({ pool: label }, u);
      this.waitingGauge.set({ pool: label }, pool.waitingCount);
      this.activeGauge.set({ pool: label }, pool.totalCount - pool.idleCount);
      this.waitSeconds.set({ pool: label }, (this.waits.get(label)?.last ?? 0) / 1000);
      high ||= u > this.control.scaleUpThreshold;
    }
    this.alerts.set({ alert: 'utilization_high' }, high ? 1 : 0);
    const slow = [...this.waits.values()].some((w) => w.last > this.control.alertWaitMs);
    this.alerts.set({ alert: 'wait_high' }, slow ? 1 : 0);
  }

  /** One evaluation: every pool of this instance, then PgBouncer (leader only). */
  async evaluate(): Promise<void> {
    if (this.evaluating) {
      return;
    }
    this.evaluating = true;
    try {
      const cap = await this.capacity();
      for (const { label, pool } of this.router.allPools()) {
        const list = this.samples.get(label) ?? [utilizationOf(pool)];
        this.samples.set(label, []);
        const avg = list.reduce((a, b) => a + b, 0) / list.length;
        const next = this.decide(maxOf(pool), avg, Math.min(this.config.database.pool.max, cap));
        if (next !== null) {
          this.record(label, maxOf(pool), next, avg, 'application pool');
          (pool.options as { max: number }).max = next;
          this.size.set({ pool: label }, next);
        }
      }
      for (const w of this.waits.values()) {
        w.max = 0;
      }
      if (
        this.config.pgbouncer &&
        (await this.leadership.tryLead(AdvisoryLock.PgBouncerPoolControl))
      ) {
        await this.controlPgBouncer().catch((err: Error) => {
          this.failures.inc({ pool: 'pgbouncer' });
          this.alerts.set({ alert: 'scaling_failure' }, 1);
          this.logger.warn({ error: err.message }, 'PgBouncer pool control failed');
        });
      }
    } finally {
      this.evaluating = false;
    }
  }

  /** The new size, or null to keep it. */
  private decide(size: number, utilization: number, max: number): number | null {
    const { scaleUpThreshold, scaleDownThreshold, scaleUpStep, scaleDownStep } = this.control;
    const min = this.config.database.pool.min;
    if (utilization >= scaleUpThreshold && size < max) {
      return Math.min(max, size + scaleUpStep);
    }
    if (utilization <= scaleDownThreshold && size > min) {
      return Math.max(min, size - scaleDownStep);
    }
    if (size > max) {
      return max;
    }
    return null;
  }

  private record(
    target: string,
    from: number,
    to: number,
    utilization: number,
    reason: string,
  ): void {
    const direction = to > from ? 'up' : 'down';
    const e: ScalingEvent = {
      at: new Date().toISOString(),
      target,
      from,
      to,
      direction,
      utilization: Math.round(utilization * 1000) / 1000,
      reason,
    };
    this.events.unshift(e);
    this.events.length = Math.min(this.events.length, 50);
    this.scaling.inc({ pool: target, direction });
    this.logger.log(e, `pool scaled ${direction}`);
  }

  /** DB_POOL_MAX_CONNECTIONS_SHARE of the writer's max_connections (read once). */
  private async capacity(): Promise<number> {
    if (this.cap === null) {
      try {
        const writer = this.router.allPools()[0]?.pool;
        const res = writer
          ? await writer.query<{ max_connections: string }>('SHOW max_connections')
          : null;
        const m = res ? Number(res.rows[0].max_connections) : NaN;
        this.cap = Number.isFinite(m)
          ? Math.max(
              this.config.database.pool.min,
              Math.floor(m * this.control.maxConnectionsShare),
            )
          : this.config.database.pool.max;
      } catch (err) {
        this.logger.warn(
          { error: (err as Error).message },
          'could not read max_connections; using DB_POOL_MAX',
        );
        return this.config.database.pool.max;
      }
    }
    return this.cap;
  }

  /**
   * SHOW POOLS into the PgBouncer gauges (pool utilization, waiting clients, wait time,
   * active connections). Called by pool control and by the monitoring sampler, on the
   * leader only (one admin connection per fleet).
   */
  async samplePgBouncer(): Promise<PgBouncerView | null> {
    const pgb = this.config.pgbouncer;
    if (!pgb) {
      return null;
    }
    return withPgBouncerAdmin(pgb, this.config.database.health.timeoutMs, async (client) => {
      const config = await client.query<{ key: string; value: string }>('SHOW CONFIG');
      const size = Number(config.rows.find((r) => r.key === 'default_pool_size')?.value ?? 0);
      return this.publishPgBouncer(size, await readPoolStats(client, pgb));
    });
  }

  private publishPgBouncer(size: number, stats: PgBouncerPoolStats): PgBouncerView {
    const utilization = size > 0 ? Math.min(1, stats.serversActiveMaxPerPool / size) : 0;
    this.pgbouncer = {
      defaultPoolSize: size,
      clientsActive: stats.clientsActive,
      clientsWaiting: stats.clientsWaiting,
      maxWaitSeconds: stats.maxWaitSeconds,
      serverActive: stats.serversActiveMaxPerPool,
      utilization,
    };
    this.size.set({ pool: 'pgbouncer' }, size);
    this.utilization.set({ pool: 'pgbouncer' }, utilization);
    this.waitingGauge.set({ pool: 'pgbouncer' }, stats.clientsWaiting);
    this.activeGauge.set({ pool: 'pgbouncer' }, stats.serversActive);
    this.waitSeconds.set({ pool: 'pgbouncer' }, stats.maxWaitSeconds);
    this.pgbClientsActive.set(stats.clientsActive);
    return this.pgbouncer;
  }

  private async controlPgBouncer(): Promise<void> {
    const pgb = this.config.pgbouncer!;
    await withPgBouncerAdmin(pgb, this.config.database.health.timeoutMs, async (client) => {
      const config = await client.query<{ key: string; value: string }>('SHOW CONFIG');
      const setting = (key: string): number =>
        Number(config.rows.find((r) => r.key === key)?.value ?? 0);
      const size = setting('default_pool_size');
      const reserve = this.config.database.pool.reserve;
      if (setting('reserve_pool_size') !== reserve) {
        // DB_POOL_RESERVE: extra server connections for a pool whose clients waited longer
        // than reserve_pool_timeout. An integer from the validated config, never input.
        await client.query(`SET reserve_pool_size = ${Math.trunc(reserve)}`);
        this.logger.log(
          { from: setting('reserve_pool_size'), to: reserve },
          'PgBouncer reserve_pool_size set from DB_POOL_RESERVE',
        );
      }
      const view = this.publishPgBouncer(size, await readPoolStats(client, pgb));
      const { clientsWaiting: waiting, maxWaitSeconds: maxWait, utilization } = view;
      if (maxWait * 1000 > this.control.alertWaitMs) {
        this.alerts.set({ alert: 'wait_high' }, 1);
      }
      // Clients waiting count as full: the pool is too small right now.
      const next = this.decide(size, waiting > 0 ? 1 : utilization, this.config.database.pool.max);
      if (next !== null) {
        // The value is an integer computed here, never input.
        await client.query(`SET default_pool_size = ${Math.trunc(next)}`);
        this.record(
          'pgbouncer',
          size,
          next,
          waiting > 0 ? 1 : utilization,
          `PgBouncer (${waiting} clients waiting)`,
        );
        view.defaultPoolSize = next;
        this.size.set({ pool: 'pgbouncer' }, next);
      }
      this.alerts.set({ alert: 'scaling_failure' }, 0);
    });
  }
}

function maxOf(pool: pg.Pool): number {
  return (pool.options as { max: number }).max;
}

function utilizationOf(pool: pg.Pool): number {
  const max = maxOf(pool);
  if (pool.waitingCount > 0) {
    return 1;
  }
  return max > 0 ? Math.min(1, (pool.totalCount - pool.idleCount) / max) : 0;
}
