import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { Counter } from 'prom-client';
import type { AppConfig, NodeAddress } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import { DatabaseMetric } from './database.metrics.js';
import { BOOT_TOPOLOGY } from './database.tokens.js';
import type { BootTopology } from './boot.js';
import { nodeName } from './pg-direct.js';
import { lsnToBigInt, NodeProbe, NodeRole, probeNode } from './topology.js';

export interface NodeState {
  name: string;
  /** Role as of the last successful probe (a node keeps its last known role while down). */
  role: NodeRole;
  healthy: boolean;
  /** A primary on an older timeline than the writer's: a former primary, never used. */
  fenced: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastProbe: NodeProbe;
  lastCheckedAt: string;
  lastError?: string;
  /** Replicas: bytes of WAL behind the writer's position of the same round. */
  lagBytes: number | null;
  /** Added at run time (replica discovery), not one of DB_NODES: only these can be removed. */
  discovered: boolean;
}

export type TopologyEvent =
  | { kind: 'writer-unhealthy'; writer: string }
  | { kind: 'checked'; writerHealthy: boolean }
  | { kind: 'writer-changed'; from: string; to: string }
  | { kind: 'fenced'; node: string; timeline: number | null }
  | { kind: 'node-added'; node: string; via: string }
  | { kind: 'node-removed'; node: string; via: string };

/**
 * Keeps the health and role of every configured node: checked every
 * DB_HEALTH_INTERVAL_MS with DB_HEALTH_TIMEOUT_MS, unhealthy after
 * DB_UNHEALTHY_THRESHOLD failures, healthy again after DB_HEALTHY_THRESHOLD
 * successes. Errors seen on live traffic count at once. The writer is the
 * non-recovery node on the highest timeline; a non-recovery node on an older one
 * is fenced (a former primary that came back) and never routed to.
 *
 * Besides DB_NODES, replicas can join and leave at run time (`addNode` / `removeNode`,
 * from the replica discovery): a new one starts unhealthy and serves reads only after
 * DB_HEALTHY_THRESHOLD successful checks that found it replaying WAL within the lag bounds.
 */
@Injectable()
export class TopologyService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(TopologyService.name);
  private readonly states = new Map<string, NodeState>();
  private readonly listeners: Array<(e: TopologyEvent) => void> = [];
  private writer: string;
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;
  private readonly connectionFailures: Counter<'node'>;
  /**
   * WAL positions replicas are known to have replayed (their probes, and the reads that
   * checked them) since they last failed and since the writer last changed. A replica's
   * replay position only grows while it runs; a restart, a rewind or a re-clone shows up
   * as a failure, a promotion as a writer change, and both forget what was known.
   */
  private readonly replayed = new Map<string, bigint>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BOOT_TOPOLOGY) boot: BootTopology,
    metrics: MetricsService,
  ) {
    this.connectionFailures = new Counter({
      name: DatabaseMetric.ConnectionFailures,
      help: 'Failed connections to a node: health probes that could not reach it and live traffic that lost it (spec metric filter connection_errors)',
      labelNames: ['node'],
      registers: [metrics.registry],
    });
    const now = new Date().toISOString();
    this.writer = boot.writer.name;
    for (const probe of boot.probes) {
      this.connectionFailures.inc({ node: probe.name }, 0);
      this.states.set(probe.name, {
        name: probe.name,
        role: probe.role,
        healthy: probe.reachable,
        fenced: boot.fenced.some((f) => f.name === probe.name),
        consecutiveFailures: probe.reachable ? 0 : 1,
        consecutiveSuccesses: probe.reachable ? 1 : 0,
        lastProbe: probe,
        lastCheckedAt: now,
        lastError: probe.error,
        lagBytes: null,
        discovered: false,
      });
    }
    this.updateLag();
  }

  get writerName(): string {
    return this.writer;
  }

  get writerState(): NodeState {
    return this.mustGet(this.writer);
  }

  on(listener: (e: TopologyEvent) => void): void {
    this.listeners.push(listener);
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      void this.refresh();
    }, this.config.database.health.intervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
  }

  /** One round of checks; concurrent callers share the round in flight. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const timeoutMs = this.config.database.health.timeoutMs;
    const probes = await Promise.all(
      [...this.states.values()].map((s) =>
        probeNode(this.config.database, s.lastProbe.address, timeoutMs),
      ),
    );
    for (const probe of probes) {
      if (!this.states.has(probe.name)) {
        continue; // removed while it was being checked
      }
      if (probe.reachable) {
        this.recordSuccess(probe);
      } else {
        this.recordFailure(probe.name, probe.error ?? 'unreachable', probe);
      }
    }
    this.reconcileWriter();
    this.updateLag();
    this.emit({ kind: 'checked', writerHealthy: this.isHealthy(this.writer) });
  }

  /**
   * Follows a promotion made by anyone (this instance, another one, an operator):
   * the reachable non-recovery node on the highest timeline is the writer; other
   * non-recovery nodes on older timelines are fenced.
   */
  private reconcileWriter(): void {
    const primaries = [...this.states.values()]
      .filter((s) => s.consecutiveFailures === 0 && s.lastProbe.role === 'primary')
      .sort((a, b) => (b.lastProbe.timeline ?? 0) - (a.lastProbe.timeline ?? 0));
    const top = primaries[0];
    if (!top) {
      return;
    }
    const current = this.mustGet(this.writer);
    const currentTimeline = current.lastProbe.timeline ?? 0;
    const currentDown = current.consecutiveFailures > 0 || current.lastProbe.role !== 'primary';
    if (
      top.name !== this.writer &&
      ((top.lastProbe.timeline ?? 0) > currentTimeline ||
        (currentDown && (top.lastProbe.timeline ?? 0) >= currentTimeline))
    ) {
      this.setWriter(top.name);
    }
    const writerTimeline = this.mustGet(this.writer).lastProbe.timeline ?? 0;
    for (const s of this.states.values()) {
      // Only a node answering as a primary right now: a dead one keeps its last role.
      const fenced =
        s.name !== this.writer &&
        s.consecutiveFailures === 0 &&
        s.lastProbe.role === 'primary' &&
        (s.lastProbe.timeline ?? 0) <= writerTimeline;
      if (fenced && !s.fenced) {
        s.fenced = true;
        this.logger.error(
          { node: s.name, timeline: s.lastProbe.timeline, writerTimeline },
          'FENCED: a former primary is running on an older timeline; it gets no traffic (rejoin it as a replica)',
        );
        this.emit({ kind: 'fenced', node: s.name, timeline: s.lastProbe.timeline });
      } else if (!fenced && s.fenced && s.lastProbe.role === 'replica') {
        s.fenced = false;
        this.logger.log({ node: s.name }, 'a fenced node came back as a replica');
      }
    }
  }

  /**
   * A replica found at run time (`via`: who found it). It starts unhealthy: reads reach it
   * once the regular checks saw it healthy DB_HEALTHY_THRESHOLD times, replaying WAL within
   * the lag bounds. False when the node is already known.
   */
  addNode(address: NodeAddress, via: string): boolean {
    const name = nodeName(address);
    if (this.states.has(name)) {
      return false;
    }
    this.connectionFailures.inc({ node: name }, 0);
    this.states.set(name, {
      name,
      role: 'unknown',
      healthy: false,
      fenced: false,
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      lastProbe: {
        name,
        address,
        reachable: false,
        role: 'unknown',
        timeline: null,
        lsn: null,
        replayLagSeconds: null,
        latencyMs: 0,
        error: 'not checked yet',
      },
      lastCheckedAt: new Date().toISOString(),
      lagBytes: null,
      discovered: true,
    });
    this.logger.log(
      { node: name, via },
      'replica discovered: reads reach it once healthy and caught up',
    );
    this.emit({ kind: 'node-added', node: name, via });
    return true;
  }

  /**
   * Forgets a discovered replica (it is being deleted): no new read goes to it, and its pool
   * is closed once its reads finish. DB_NODES and the writer are never removed (false).
   */
  removeNode(name: string, via: string): boolean {
    const s = this.states.get(name);
    if (!s || !s.discovered || name === this.writer) {
      return false;
    }
    this.states.delete(name);
    this.replayed.delete(name);
    this.logger.log({ node: name, via }, 'replica removed from the topology');
    this.emit({ kind: 'node-removed', node: name, via });
    return true;
  }

  /** Whether `name` was added at run time (not one of DB_NODES). */
  isDiscovered(name: string): boolean {
    return this.states.get(name)?.discovered ?? false;
  }

  /** The writer changed (promotion): routing follows at once. */
  setWriter(name: string): void {
    if (name === this.writer) {
      return;
    }
    const from = this.writer;
    this.writer = name;
    this.replayed.clear();
    const s = this.mustGet(name);
    s.role = 'primary';
    s.fenced = false;
    this.logger.warn({ from, to: name }, 'writer changed');
    this.emit({ kind: 'writer-changed', from, to: name });
  }

  /** Records a probe made outside the regular round (failover, switchover). */
  observe(probe: NodeProbe): void {
    if (probe.reachable) {
      this.recordSuccess(probe);
    } else {
      this.recordFailure(probe.name, probe.error ?? 'unreachable', probe);
    }
  }

  private recordSuccess(probe: NodeProbe): void {
    const s = this.mustGet(probe.name);
    s.consecutiveFailures = 0;
    s.consecutiveSuccesses += 1;
    s.lastProbe = probe;
    s.role = probe.role;
    s.lastCheckedAt = new Date().toISOString();
    s.lastError = undefined;
    if (probe.role === 'replica' && probe.lsn) {
      this.noteReplayed(probe.name, probe.lsn);
    } else {
      this.replayed.delete(probe.name);
    }
    if (!s.healthy && s.consecutiveSuccesses >= this.config.database.health.healthyThreshold) {
      s.healthy = true;
      this.logger.log({ node: s.name, role: s.role }, 'node healthy again');
    }
  }

  /**
   * A failed check. `immediate` (errors seen on live traffic such as connection
   * refused) marks a replica unhealthy at once; for the writer it counts as one
   * failed check and starts a check round right away.
   */
  recordFailure(name: string, error: string, probe?: NodeProbe, immediate = false): void {
    const s = this.states.get(name);
    if (!s) {
      return;
    }
    this.connectionFailures.inc({ node: name });
    this.replayed.delete(name);
    s.consecutiveSuccesses = 0;
    s.consecutiveFailures += 1;
    s.lastError = error;
    s.lastCheckedAt = new Date().toISOString();
    if (probe) {
      s.lastProbe = {
        ...probe,
        role: s.lastProbe.role,
        timeline: s.lastProbe.timeline,
        lsn: s.lastProbe.lsn,
      };
    }
    const isWriter = name === this.writer;
    if (isWriter && immediate) {
      void this.refresh();
    }
    if (
      s.healthy &&
      ((immediate && !isWriter) ||
        s.consecutiveFailures >= this.config.database.health.unhealthyThreshold)
    ) {
      s.healthy = false;
      this.logger.warn(
        { node: name, role: s.role, failures: s.consecutiveFailures, error },
        'node unhealthy',
      );
      if (isWriter) {
        this.emit({ kind: 'writer-unhealthy', writer: name });
      }
    }
  }

  /** Records that replica `name` has replayed `lsn` (a probe, or a read's check). */
  noteReplayed(name: string, lsn: string): void {
    const at = lsnToBigInt(lsn);
    const known = this.replayed.get(name);
    if (known === undefined || at > known) {
      this.replayed.set(name, at);
    }
  }

  /** Whether every one of `names` is known to have replayed `lsn` (see `replayed`). */
  knownReplayed(names: string[], lsn: string): boolean {
    const min = lsnToBigInt(lsn);
    return names.every((name) => {
      const known = this.replayed.get(name);
      return known !== undefined && known >= min;
    });
  }

  isHealthy(name: string): boolean {
    return this.states.get(name)?.healthy ?? false;
  }

  /**
   * Replicas that may serve reads: healthy, not fenced, in recovery, and within the
   * lag bounds (DB_READ_MAX_LAG_SECONDS / _BYTES) as of the last check round.
   */
  readCandidates(): string[] {
    return this.names().filter((name) => this.exclusion(name) === null);
  }

  /** Why a node is not a read candidate (diagnostics), or null. */
  exclusion(name: string): string | null {
    const s = this.states.get(name);
    if (!s) {
      return 'unknown node';
    }
    if (name === this.writer) {
      return 'writer';
    }
    if (s.fenced) {
      return 'fenced';
    }
    if (!s.healthy) {
      return 'unhealthy';
    }
    if (s.role !== 'replica') {
      return `role ${s.role}`;
    }
    if (s.lastProbe.lsn === null) {
      return 'no WAL replayed yet';
    }
    const bound = this.config.database.readMaxLag;
    if (s.lagBytes !== null && s.lagBytes > bound.bytes) {
      return `lag ${s.lagBytes} bytes > ${bound.bytes}`;
    }
    if ((s.lastProbe.replayLagSeconds ?? 0) > bound.seconds) {
      return `lag ${s.lastProbe.replayLagSeconds} s > ${bound.seconds}`;
    }
    return null;
  }

  snapshot(): NodeState[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  names(): string[] {
    return [...this.states.keys()];
  }

  private updateLag(): void {
    const writerLsn = this.states.get(this.writer)?.lastProbe.lsn;
    for (const s of this.states.values()) {
      s.lagBytes =
        s.role === 'replica' && writerLsn && s.lastProbe.lsn
          ? Number(lsnToBigInt(writerLsn) - lsnToBigInt(s.lastProbe.lsn))
          : null;
      if (s.lagBytes !== null && s.lagBytes < 0) {
        s.lagBytes = 0; // the replica was probed a moment after the writer
      }
    }
  }

  private emit(e: TopologyEvent): void {
    for (const l of this.listeners) {
      l(e);
    }
  }

  private mustGet(name: string): NodeState {
    const s = this.states.get(name);
    if (!s) {
      throw new Error(`unknown node ${name}`);
    }
    return s;
  }
}
