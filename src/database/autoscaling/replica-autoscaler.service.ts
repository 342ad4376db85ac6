import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import type { AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { MetricsService } from '../../monitoring/metrics.service.js';
import { JobLeadershipService } from '../job-leadership.service.js';
import { AdvisoryLock } from '../locks.js';
import { ReadRouterService } from '../read-router.service.js';
import { METRIC_PERIOD_SECONDS, RdsReplicaFleet, ReplicaFleet } from './rds-replica-fleet.js';
import {
  AutoscalingPolicy,
  AutoscalingState,
  Decision,
  decide,
  retryDelayMs,
} from './replica-autoscaling.policy.js';

/** What one evaluation saw and did. */
export type AutoscaleTick =
  | { ran: false; reason: 'disabled' | 'not-leader' | 'busy' }
  | {
      ran: true;
      replicas: string[];
      decision: Decision;
      /** The replica added or removed. */
      changed?: string;
      /** Why the add/remove call failed (it is retried after `retryInMs`). */
      error?: string;
      retryInMs?: number;
    };

/** CloudWatch publishes RDS's one-minute metrics a few minutes late. */
const SAMPLE_LAG_MS = 5 * 60_000;

/**
 * The read-replica autoscaler (spec read_replicas.scaling), a leader-only job: every
 * REPLICA_AUTOSCALING_INTERVAL_SECONDS the instance holding its advisory lock lists the
 * source's replicas, reads their load and applies `decide` (replica-autoscaling.policy.ts):
 * one CreateDBInstanceReadReplica or DeleteDBInstance at most per evaluation, none while a
 * replica is changing, cooldowns after every change, a doubling backoff after a failure.
 * The cooldown survives a change of leader: it starts from the newest replica's creation.
 */
@Injectable()
export class ReplicaAutoscalerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ReplicaAutoscalerService.name);
  private readonly policy: AutoscalingPolicy;
  private fleet: ReplicaFleet | null = null;
  private timer?: NodeJS.Timeout;
  private running = false;
  /** The last "no change" reason without its numbers: logged when the situation changes, not each tick. */
  private lastSituation = '';
  /** The writer's max_connections once read (it changes only with a restart). */
  private writerMaxConnections: number | null = null;
  private readonly state: AutoscalingState = {
    lastChangeAt: null,
    failures: 0,
    lastFailureAt: null,
  };
  private readonly replicasGauge: Gauge;
  private readonly decisions: Counter<'action'>;
  private readonly failuresTotal: Counter<'action'>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly leadership: JobLeadershipService,
    private readonly router: ReadRouterService,
    metrics: MetricsService,
  ) {
    const c = config.replicaAutoscaling;
    this.policy = {
      minReplicas: c.minReplicas,
      maxReplicas: c.maxReplicas,
      cpuPercent: c.cpuPercent,
      connectionsPercent: c.connectionsPercent,
      scaleInCpuPercent: c.scaleInCpuPercent,
      scaleInConnectionsPercent: c.scaleInConnectionsPercent,
      scaleOutPeriodMs: c.scaleOutMs,
      scaleInPeriodMs: c.scaleInMs,
      scaleOutCooldownMs: c.scaleOutCooldownMs,
      scaleInCooldownMs: c.scaleInCooldownMs,
      sampleStepMs: METRIC_PERIOD_SECONDS * 1000,
      sampleLagMs: SAMPLE_LAG_MS,
      retryBaseMs: c.retryMs,
      retryMaxMs: c.retryMaxMs,
    };
    this.replicasGauge = new Gauge({
      name: 'dbu_replica_autoscaler_replicas',
      help: 'Read replicas of the source instance, as the autoscaler last listed them (leader only)',
      registers: [metrics.registry],
    });
    this.decisions = new Counter({
      name: 'dbu_replica_autoscaler_decisions_total',
      help: 'Replica autoscaler evaluations by outcome (add, remove, none)',
      labelNames: ['action'],
      registers: [metrics.registry],
    });
    this.failuresTotal = new Counter({
      name: 'dbu_replica_autoscaler_failures_total',
      help: 'Failed CreateDBInstanceReadReplica/DeleteDBInstance calls (each retried after a backoff)',
      labelNames: ['action'],
      registers: [metrics.registry],
    });
  }

  onApplicationBootstrap(): void {
    if (!this.config.replicaAutoscaling.enabled) {
      return;
    }
    this.timer = setInterval(() => {
      void this.tick().catch((err: Error) =>
        this.logger.warn({ error: err.message }, 'replica autoscaler evaluation failed'),
      );
    }, this.config.replicaAutoscaling.intervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
    (this.fleet as { close?: () => void } | null)?.close?.();
  }

  /** The fleet (tests may give their own). */
  useFleet(fleet: ReplicaFleet): void {
    this.fleet = fleet;
  }

  private getFleet(): ReplicaFleet {
    this.fleet ??= new RdsReplicaFleet(this.config.replicaAutoscaling, () => this.maxConnections());
    return this.fleet;
  }

  private async maxConnections(): Promise<number> {
    const configured = this.config.replicaAutoscaling.maxConnections;
    if (configured > 0) {
      return configured;
    }
    if (this.writerMaxConnections === null) {
      const rows = await this.router.readTransaction<Array<{ n: number }>>(
        (m) => m.query(`SELECT current_setting('max_connections')::int AS n`),
        { onWriter: true },
      );
      this.writerMaxConnections = rows[0].n;
    }
    return this.writerMaxConnections;
  }

  /** One evaluation (the timer's; tests call it with their clock). */
  async tick(now = Date.now()): Promise<AutoscaleTick> {
    if (!this.config.replicaAutoscaling.enabled) {
      return { ran: false, reason: 'disabled' };
    }
    if (this.running) {
      return { ran: false, reason: 'busy' };
    }
    this.running = true;
    try {
      if (!(await this.leadership.tryLead(AdvisoryLock.ReplicaAutoscaler))) {
        return { ran: false, reason: 'not-leader' };
      }
      return await this.evaluate(now);
    } finally {
      this.running = false;
    }
  }

  private async evaluate(now: number): Promise<AutoscaleTick> {
    const fleet = this.getFleet();
    const replicas = await fleet.list();
    this.replicasGauge.set(replicas.length);
    if (this.state.lastChangeAt === null) {
      // a new leader: the cooldown runs from the newest replica the autoscaler made
      const made = replicas
        .filter((r) => r.managed && r.createdAt)
        .map((r) => r.createdAt!.getTime());
      this.state.lastChangeAt = made.length > 0 ? Math.max(...made) : null;
    }
    const available = replicas.filter((r) => r.status === 'available');
    const span = Math.max(this.policy.scaleOutPeriodMs, this.policy.scaleInPeriodMs);
    const samples =
      available.length === replicas.length && available.length > 0
        ? await fleet.load(available, now - span - SAMPLE_LAG_MS - 60_000, now)
        : [];
    const decision = decide(this.policy, replicas, samples, this.state, now);
    this.decisions.inc({ action: decision.action });
    const ids = replicas.map((r) => `${r.id}(${r.status})`);
    if (decision.action === 'none') {
      // a countdown ("next in 241 s") is the same situation as a tick ago
      const situation = decision.reason.replace(/\d+(\.\d+)?/g, '#');
      if (situation !== this.lastSituation) {
        this.logger.log(
          { replicas: ids, reason: decision.reason },
          'replica autoscaler: no change',
        );
      }
      this.lastSituation = situation;
      return { ran: true, replicas: ids, decision };
    }
    this.lastSituation = '';
    try {
      const changed =
        decision.action === 'add'
          ? await fleet.add(new Date(now))
          : (await fleet.remove(decision.id), decision.id);
      this.state.lastChangeAt = now;
      this.state.failures = 0;
      this.state.lastFailureAt = null;
      this.logger.log(
        { replicas: ids, action: decision.action, replica: changed, reason: decision.reason },
        decision.action === 'add'
          ? 'replica autoscaler: adding a replica'
          : 'replica autoscaler: removing a replica',
      );
      return { ran: true, replicas: ids, decision, changed };
    } catch (err) {
      this.state.failures += 1;
      this.state.lastFailureAt = now;
      this.failuresTotal.inc({ action: decision.action });
      const retryInMs = retryDelayMs(this.policy, this.state.failures);
      const error = err instanceof Error ? err.message : String(err);
      this.logger.error(
        {
          replicas: ids,
          action: decision.action,
          reason: decision.reason,
          error,
          failures: this.state.failures,
          retryInMs,
        },
        `replica autoscaler: ${decision.action} failed; retrying in ${Math.round(retryInMs / 1000)} s`,
      );
      return { ran: true, replicas: ids, decision, error, retryInMs };
    }
  }
}
