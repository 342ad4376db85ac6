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
import { nodeName } from '../pg-direct.js';
import { ReadRouterService } from '../read-router.service.js';
import { TopologyService } from '../topology.service.js';
import { LocalStackFleet } from './local-stack-fleet.js';
import { RdsReplicaFleet, ReplicaFleet } from './rds-replica-fleet.js';
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

/** Replica states in which a discovered replica leaves the topology. */
const LEAVING = new Set(['deleting', 'deleted', 'stopping', 'stopped', 'failed']);

/**
 * The read-replica autoscaler (spec read_replicas.scaling), a leader-only job: every
 * REPLICA_AUTOSCALING_INTERVAL_SECONDS the instance holding its advisory lock lists the
 * source's replicas, reads their load and applies `decide` (replica-autoscaling.policy.ts):
 * one CreateDBInstanceReadReplica or DeleteDBInstance at most per evaluation, none while a
 * replica is changing, cooldowns after every change, a doubling backoff after a failure.
 * The cooldown survives a change of leader: it starts from the newest replica's creation.
 *
 * Every instance, leader or not, also runs the replica discovery every
 * REPLICA_AUTOSCALING_DISCOVERY_SECONDS: an `available` replica of the fleet that is not in its
 * topology is added (reads reach it once healthy and caught up), one that is gone or leaving
 * is removed. The leader takes a replica out of its own topology before deleting it.
 */
@Injectable()
export class ReplicaAutoscalerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ReplicaAutoscalerService.name);
  private readonly policy: AutoscalingPolicy;
  private fleet: ReplicaFleet | null = null;
  private timer?: NodeJS.Timeout;
  private discoveryTimer?: NodeJS.Timeout;
  private running = false;
  private discovering?: Promise<void>;
  /** Replicas this leader is deleting: discovery does not bring them back meanwhile. */
  private readonly retiring = new Set<string>();
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
    private readonly topology: TopologyService,
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
      // the fleet's (evaluate() fills them in)
      sampleStepMs: 0,
      sampleLagMs: 0,
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
    this.discoveryTimer = setInterval(() => {
      void this.discover().catch((err: Error) =>
        this.logger.warn({ error: err.message }, 'replica discovery failed'),
      );
    }, this.config.replicaAutoscaling.discoveryMs);
    this.discoveryTimer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
    if (this.discoveryTimer) {
      clearInterval(this.discoveryTimer);
    }
    (this.fleet as { close?: () => void } | null)?.close?.();
  }

  /** The fleet (tests may give their own). */
  useFleet(fleet: ReplicaFleet): void {
    this.fleet = fleet;
  }

  private getFleet(): ReplicaFleet {
    const c = this.config.replicaAutoscaling;
    this.fleet ??=
      c.provider === 'local'
        ? new LocalStackFleet(
            c,
            this.config.database,
            this.topology,
            Math.max(c.scaleOutMs, c.scaleInMs),
          )
        : new RdsReplicaFleet(c, () => this.maxConnections());
    return this.fleet;
  }

  /**
   * Brings this instance's topology in line with the fleet: new `available` replicas are
   * added, discovered ones that are gone or leaving are removed. Concurrent calls share one.
   */
  discover(): Promise<void> {
    this.discovering ??= this.syncTopology().finally(() => {
      this.discovering = undefined;
    });
    return this.discovering;
  }

  private async syncTopology(): Promise<void> {
    const replicas = await this.getFleet().list();
    const via = `replica discovery (${this.config.replicaAutoscaling.provider})`;
    const keep = new Set<string>();
    for (const id of this.retiring) {
      if (!replicas.some((r) => r.id === id && !LEAVING.has(r.status))) {
        this.retiring.delete(id);
      }
    }
    for (const r of replicas) {
      if (!r.endpoint || LEAVING.has(r.status) || this.retiring.has(r.id)) {
        continue;
      }
      keep.add(nodeName(r.endpoint));
      if (r.status === 'available') {
        this.topology.addNode(r.endpoint, `${via}: ${r.id}`);
      }
    }
    for (const s of this.topology.snapshot()) {
      if (s.discovered && !keep.has(s.name)) {
        this.topology.removeNode(s.name, via);
      }
    }
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
    const policy: AutoscalingPolicy = {
      ...this.policy,
      sampleStepMs: fleet.sampleStepMs,
      sampleLagMs: fleet.sampleLagMs,
    };
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
    const span = Math.max(policy.scaleOutPeriodMs, policy.scaleInPeriodMs);
    const samples =
      available.length === replicas.length && available.length > 0
        ? await fleet.load(available, now - span - policy.sampleLagMs - policy.sampleStepMs, now)
        : [];
    const decision = decide(policy, replicas, samples, this.state, now);
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
      let changed: string;
      if (decision.action === 'add') {
        changed = await fleet.add(new Date(now));
      } else {
        // reads stop going to it before it goes away
        this.retiring.add(decision.id);
        const leaving = replicas.find((r) => r.id === decision.id)?.endpoint;
        if (leaving) {
          this.topology.removeNode(nodeName(leaving), 'replica autoscaler');
        }
        await fleet.remove(decision.id);
        changed = decision.id;
      }
      this.state.lastChangeAt = now;
      this.state.failures = 0;
      this.state.lastFailureAt = null;
      this.logger.log(
        { replicas: ids, action: decision.action, replica: changed, reason: decision.reason },
        decision.action === 'add'
          ? 'replica autoscaler: adding a replica'
          : 'replica autoscaler: removing a replica',
      );
      await this.discover().catch((err: Error) =>
        this.logger.warn({ error: err.message }, 'replica discovery failed'),
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
