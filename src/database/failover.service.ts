import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { setTimeout as sleep } from 'node:timers/promises';
import { DomainError, ErrorCode, InvalidInputError } from '../common/errors.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import { probeAll } from './boot.js';
import { AdvisoryLock, LOCK_NAMESPACE } from './locks.js';
import { directClientConfig, withDirectClient } from './pg-direct.js';
import { ReadRouterService } from './read-router.service.js';
import { lsnToBigInt, NodeProbe } from './topology.js';
import { TopologyService } from './topology.service.js';

export interface FailoverRecord {
  reason: string;
  planned: boolean;
  from: string;
  to: string | null;
  outcome: 'promoted' | 'followed' | 'cancelled' | 'failed';
  /** true when this instance ran pg_promote(); false when another one did. */
  promotedHere: boolean;
  lagBytes: number | null;
  startedAt: string;
  tookMs: number;
  detail?: string;
}

/** Give up a failover attempt after this long (writes stay 503 until a writer exists). */
const ATTEMPT_DEADLINE_MS = 60_000;
const PROMOTE_WAIT_S = 60;

/**
 * Promotes a replica when the writer fails its health checks (FAILOVER_MODE=auto)
 * or on request (POST /v1/ops/failover). Only a replica within
 * FAILOVER_MAX_LAG_BYTES of the writer's last known position is promoted; among
 * them the one with the highest replay LSN (ties: by name, so every instance picks
 * the same one). Instances coordinate through an advisory lock on the first
 * reachable replica by name; `pg_promote` on a node already promoted is harmless.
 * While it runs, writes answer 503 with Retry-After; reads stay on replicas.
 */
@Injectable()
export class FailoverService implements OnModuleInit {
  private readonly logger = new Logger(FailoverService.name);
  private running: Promise<FailoverRecord> | null = null;
  private readonly history: FailoverRecord[] = [];
  private readonly failovers: Counter<'outcome'>;
  private readonly fencedGauge: Gauge;
  private readonly writerAvailable: Gauge;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly topology: TopologyService,
    private readonly router: ReadRouterService,
    metrics: MetricsService,
  ) {
    this.failovers = new Counter({
      name: 'dbu_failovers_total',
      help: 'Failovers by outcome (promoted here, followed another instance, cancelled, failed)',
      labelNames: ['outcome'],
      registers: [metrics.registry],
    });
    this.fencedGauge = new Gauge({
      name: 'dbu_fenced_nodes',
      help: 'Former primaries running on an older timeline (alert: rejoin them as replicas)',
      registers: [metrics.registry],
      collect: () => {
        this.fencedGauge.set(this.topology.snapshot().filter((s) => s.fenced).length);
      },
    });
    this.writerAvailable = new Gauge({
      name: 'dbu_writer_available',
      help: '1 while writes are accepted, 0 during a failover or without a writer',
      registers: [metrics.registry],
      collect: () => {
        this.writerAvailable.set(this.router.writesBlocked ? 0 : 1);
      },
    });
  }

  get mode(): AppConfig['database']['failover']['mode'] {
    return this.config.database.failover.mode;
  }

  get inProgress(): boolean {
    return this.running !== null;
  }

  recent(): FailoverRecord[] {
    return [...this.history];
  }

  onModuleInit(): void {
    this.topology.on((e) => {
      // On the transition, and on every later check round while it stays down (an
      // attempt that found no eligible replica is retried).
      const writerDown =
        e.kind === 'writer-unhealthy' || (e.kind === 'checked' && !e.writerHealthy);
      if (writerDown && this.mode === 'auto' && !this.running) {
        void this.failover(`writer ${this.topology.writerName} failed its health checks`, {}).catch(
          (err: Error) => this.logger.error({ error: err.message }, 'failover crashed'),
        );
      }
    });
  }

  /** Starts (or joins) a failover; resolves when it ended. */
  failover(reason: string, opts: { target?: string; planned?: boolean }): Promise<FailoverRecord> {
    this.running ??= this.run(reason, opts.target ?? null, opts.planned ?? false).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** POST /v1/ops/failover: a planned switchover (or a failover in manual mode). */
  async requestSwitchover(target?: string): Promise<FailoverRecord> {
    if (this.mode === 'off') {
      throw new DomainError(
        ErrorCode.Conflict,
        'FAILOVER_MODE is off: promotions are not done by this service',
      );
    }
    if (target && !this.topology.names().includes(target)) {
      throw new InvalidInputError([
        { field: 'target', message: `target ${target} is not a configured node` },
      ]);
    }
    if (target === this.topology.writerName) {
      throw new InvalidInputError([
        { field: 'target', message: `target ${target} is already the writer` },
      ]);
    }
    const writerHealthy = this.topology.isHealthy(this.topology.writerName);
    return this.failover(writerHealthy ? 'planned switchover' : 'manual failover', {
      target,
      planned: writerHealthy,
    });
  }

  private async run(
    reason: string,
    target: string | null,
    planned: boolean,
  ): Promise<FailoverRecord> {
    const started = Date.now();
    const from = this.topology.writerName;
    const fromTimeline = this.topology.writerState.lastProbe.timeline ?? 0;
    // The reason (node names) goes to the log and /v1/ops/topology, not to every 503.
    this.router.writesBlocked = planned
      ? 'a planned switchover is in progress; retry shortly'
      : 'failover in progress; retry shortly';
    this.logger.warn({ from, reason, target, planned }, 'failover started: writes answer 503');
    const record = (
      outcome: FailoverRecord['outcome'],
      to: string | null,
      extra: Partial<FailoverRecord> = {},
    ): FailoverRecord => {
      const r: FailoverRecord = {
        reason,
        planned,
        from,
        to,
        outcome,
        promotedHere: false,
        lagBytes: null,
        startedAt: new Date(started).toISOString(),
        tookMs: Date.now() - started,
        ...extra,
      };
      this.history.unshift(r);
      this.history.length = Math.min(this.history.length, 20);
      this.failovers.inc({ outcome });
      this.logger.warn(r, `failover ${outcome}`);
      return r;
    };
    try {
      const targetLsn = planned ? await this.writerLsn(from) : null;
      while (Date.now() - started < ATTEMPT_DEADLINE_MS) {
        const probes = await probeAll(this.config, this.config.database.health.timeoutMs);
        probes.forEach((p) => this.topology.observe(p));
        // Someone (another instance, an operator) already promoted a node: follow it.
        const promoted = probes
          .filter((p) => p.reachable && p.role === 'primary' && (p.timeline ?? 0) > fromTimeline)
          .sort((a, b) => (b.timeline ?? 0) - (a.timeline ?? 0))[0];
        if (promoted) {
          this.topology.setWriter(promoted.name);
          return record('followed', promoted.name);
        }
        const old = probes.find((p) => p.name === from);
        if (!planned && old?.reachable && old.role === 'primary') {
          return record('cancelled', from, {
            detail: 'the writer answered again before a promotion',
          });
        }
        const candidate = this.choose(probes, from, target, targetLsn);
        if (typeof candidate === 'string') {
          this.logger.warn({ reason: candidate }, 'no replica can be promoted yet; retrying');
          await sleep(this.config.database.health.intervalMs);
          continue;
        }
        let promotedHere: boolean;
        try {
          promotedHere = await this.promoteUnderLock(candidate.probe, probes);
        } catch (err) {
          this.logger.error(
            { node: candidate.probe.name, error: (err as Error).message },
            'promotion attempt failed; retrying',
          );
          await sleep(this.config.database.health.intervalMs);
          continue;
        }
        const after = await probeAll(this.config, this.config.database.health.timeoutMs);
        after.forEach((p) => this.topology.observe(p));
        const now = after.find((p) => p.name === candidate.probe.name);
        if (now?.reachable && now.role === 'primary') {
          this.topology.setWriter(now.name);
          return record(promotedHere ? 'promoted' : 'followed', now.name, {
            promotedHere,
            lagBytes: candidate.lagBytes,
          });
        }
        await sleep(this.config.database.health.intervalMs);
      }
      return record('failed', null, { detail: `no promotion within ${ATTEMPT_DEADLINE_MS} ms` });
    } catch (err) {
      return record('failed', null, { detail: (err as Error).message });
    } finally {
      this.router.writesBlocked = null;
    }
  }

  /** The replica to promote, or why there is none. */
  private choose(
    probes: NodeProbe[],
    from: string,
    target: string | null,
    mustReach: string | null,
  ): { probe: NodeProbe; lagBytes: number | null } | string {
    const fenced = new Set(
      this.topology
        .snapshot()
        .filter((s) => s.fenced)
        .map((s) => s.name),
    );
    const replicas = probes
      .filter(
        (p) =>
          p.reachable &&
          p.role === 'replica' &&
          p.lsn !== null &&
          p.name !== from &&
          !fenced.has(p.name) &&
          (target === null || p.name === target),
      )
      .sort((a, b) => {
        const d = lsnToBigInt(b.lsn!) - lsnToBigInt(a.lsn!);
        return d === 0n ? a.name.localeCompare(b.name) : d > 0n ? 1 : -1;
      });
    const best = replicas[0];
    if (!best) {
      return target ? `target ${target} is not a reachable replica` : 'no reachable replica';
    }
    const reference =
      mustReach ?? this.topology.snapshot().find((s) => s.name === from)?.lastProbe.lsn;
    const lagBytes = reference
      ? Math.max(0, Number(lsnToBigInt(reference) - lsnToBigInt(best.lsn!)))
      : null;
    if (mustReach !== null && lagBytes !== 0) {
      return `switchover: ${best.name} has not replayed the writer's position yet (${lagBytes} bytes behind)`;
    }
    if (lagBytes !== null && lagBytes > this.config.database.failover.maxLagBytes) {
      return `best replica ${best.name} is ${lagBytes} bytes behind (FAILOVER_MAX_LAG_BYTES ${this.config.database.failover.maxLagBytes})`;
    }
    return { probe: best, lagBytes };
  }

  /**
   * Promotes `candidate` holding the failover lock, taken on the first reachable
   * replica by name (the same node for every instance), so two instances never
   * promote two different nodes. False when another instance held the lock.
   */
  private async promoteUnderLock(candidate: NodeProbe, probes: NodeProbe[]): Promise<boolean> {
    const lockNode = probes
      .filter((p) => p.reachable && p.role === 'replica')
      .sort((a, b) => a.name.localeCompare(b.name))[0];
    const db = this.config.database;
    const timeoutMs = db.health.timeoutMs;
    return withDirectClient(
      directClientConfig(db, lockNode.address, {
        timeoutMs,
        applicationName: 'database-unit:failover',
        noQueryTimeout: true,
      }),
      async (lockClient) => {
        const got = await lockClient.query<{ ok: boolean }>(
          'SELECT pg_try_advisory_lock($1, $2) AS ok',
          [LOCK_NAMESPACE, AdvisoryLock.Failover],
        );
        if (!got.rows[0].ok) {
          this.logger.log(
            { lockNode: lockNode.name },
            'another instance is promoting; following it',
          );
          await sleep(this.config.database.health.intervalMs);
          return false;
        }
        const promote = async (c: { query: typeof lockClient.query }): Promise<boolean> => {
          const rec = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
          if (!rec.rows[0].r) {
            return false; // already promoted (by another instance, an operator, an earlier attempt)
          }
          this.logger.warn(
            { node: candidate.name, lsn: candidate.lsn },
            'promoting replica (pg_promote)',
          );
          await c.query('SELECT pg_promote(true, $1)', [PROMOTE_WAIT_S]);
          return true;
        };
        if (lockNode.name === candidate.name) {
          return promote(lockClient);
        }
        return withDirectClient(
          directClientConfig(db, candidate.address, {
            timeoutMs,
            applicationName: 'database-unit:failover',
            noQueryTimeout: true,
          }),
          promote,
        );
      },
    );
  }

  private async writerLsn(name: string): Promise<string> {
    const node = this.topology.snapshot().find((s) => s.name === name)!;
    return withDirectClient(
      directClientConfig(this.config.database, node.lastProbe.address, {
        timeoutMs: this.config.database.health.timeoutMs,
      }),
      async (c) => {
        // Planned switchover: flush what is committed, then wait for the replica to replay it.
        const res = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        return res.rows[0].lsn;
      },
    );
  }
}
