import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { RedisService } from '../cache/redis.service.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { AdvisoryLock } from '../database/locks.js';
import { directClientConfig, withDirectClient } from '../database/pg-direct.js';
import { PoolControllerService } from '../database/pool-controller.service.js';
import { NodeState, TopologyService } from '../database/topology.service.js';
import { CpuEstimator, minuteWindow } from './cpu-estimate.js';
import { NodeStats, readNodeStats, readWriterStats, WriterStats } from './database-stats.js';
import { parseRedisInfo } from './redis-info.js';
import { CONNECTION_STATES, SamplerMetrics } from './sampler.metrics.js';

export type SampleSource = 'database' | 'redis' | 'pgbouncer';

export interface SampleReport {
  leader: boolean;
  /** Nodes sampled (leader only), and those that failed. */
  nodes: Array<{ node: string; role: string; ok: boolean }>;
  redis: boolean;
  /** null: not sampled (not the leader, or no PgBouncer configured). */
  pgbouncer: boolean | null;
}

/**
 * Samples what the service does not see on its own hot path, every
 * MONITORING_DB_SAMPLE_SECONDS:
 * - PostgreSQL, on the sampling leader only (advisory lock, like pool control): every
 *   reachable, unfenced node's own statistics, the writer's cluster-wide ones (WAL,
 *   archiver, size, wraparound) and the topology monitor's replication lag. An instance
 *   that is not (or no longer) the leader removes those series, so nothing stale is
 *   exported; dbu_monitoring_sampler_leader says which instance exports them.
 * - Redis INFO, on every instance (cheap, and it stays visible when PostgreSQL is down).
 * - PgBouncer's SHOW POOLS, on the leader.
 * A failed sample is counted and logged once per outage; it never throws into the app.
 */
@Injectable()
export class MonitoringSamplerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(MonitoringSamplerService.name);
  private timer?: NodeJS.Timeout;
  private inFlight: Promise<SampleReport> | null = null;
  private exportsDatabase = false;
  /** node → role of the PostgreSQL series this instance exports. */
  private readonly exported = new Map<string, string>();
  /** Sources failing right now (logged once when they start failing). */
  private readonly failing = new Set<string>();
  /** host:port of REDIS_URL (never its credentials): the Redis series' node label. */
  private readonly redisNode: string;
  /** dbu_db_cpu_utilization_percent per node (MONITORING_DB_VCPUS > 0). */
  private readonly cpu: CpuEstimator;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: SamplerMetrics,
    private readonly topology: TopologyService,
    private readonly leadership: JobLeadershipService,
    private readonly pools: PoolControllerService,
    private readonly redis: RedisService,
  ) {
    this.redisNode = new URL(config.redis.url).host;
    this.cpu = new CpuEstimator(
      config.monitoring.dbVcpus,
      minuteWindow(config.monitoring.sampleSeconds),
    );
  }

  onApplicationBootstrap(): void {
    const seconds = this.config.monitoring.sampleSeconds;
    if (seconds === 0) {
      this.logger.log('monitoring sampler off (MONITORING_DB_SAMPLE_SECONDS=0)');
      return;
    }
    this.timer = setInterval(() => void this.sample(), seconds * 1000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** One round; concurrent callers (the timer, tests) share the round in flight. */
  sample(): Promise<SampleReport> {
    this.inFlight ??= this.round().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async round(): Promise<SampleReport> {
    const [redis, leader] = await Promise.all([this.sampleRedis(), this.lead()]);
    this.metrics.leader.set(leader ? 1 : 0);
    if (!leader) {
      if (this.exportsDatabase) {
        this.metrics.resetDatabase();
        this.exported.clear();
        this.cpu.clear();
        this.exportsDatabase = false;
        this.logger.log('not the sampling leader: cluster-wide database metrics removed');
      }
      return { leader, nodes: [], redis, pgbouncer: null };
    }
    this.exportsDatabase = true;
    const [nodes, pgbouncer] = await Promise.all([this.sampleDatabase(), this.samplePgBouncer()]);
    return { leader, nodes, redis, pgbouncer };
  }

  /**
   * Leadership is decided on the writer: while the topology monitor sees it down there is
   * no leader to ask (and no cluster figure to trust); that counts as one failed sample
   * instead of a leadership error every interval.
   */
  private async lead(): Promise<boolean> {
    const writer = this.topology.writerName;
    if (!this.topology.isHealthy(writer)) {
      this.failed('database', 'database writer', new Error(`writer ${writer} is unhealthy`));
      return false;
    }
    this.recovered('database writer');
    return this.leadership.tryLead(AdvisoryLock.MonitoringSampler);
  }

  private async sampleDatabase(): Promise<SampleReport['nodes']> {
    const writer = this.topology.writerName;
    const targets = this.topology
      .snapshot()
      .filter((s) => !s.fenced && s.consecutiveFailures === 0 && s.role !== 'unknown');
    const results = await Promise.all(
      targets.map(async (state) => {
        const ok = await this.sampleNode(state, state.name === writer);
        return { node: state.name, role: state.role, ok };
      }),
    );
    const live = new Map(results.filter((r) => r.ok).map((r) => [r.node, r.role]));
    for (const [node, role] of this.exported) {
      if (live.get(node) !== role) {
        this.metrics.removeNode(node, role);
        this.exported.delete(node);
        this.cpu.forget(node);
      }
    }
    for (const [node, role] of live) {
      this.exported.set(node, role);
    }
    return results;
  }

  private async sampleNode(state: NodeState, isWriter: boolean): Promise<boolean> {
    const db = this.config.database;
    const timeoutMs = this.config.monitoring.statementTimeoutMs;
    try {
      const { node, writer } = await withDirectClient(
        {
          ...directClientConfig(db, state.lastProbe.address, {
            timeoutMs: Math.max(timeoutMs, db.connectTimeoutMs),
            applicationName: 'database-unit:monitor',
          }),
          statement_timeout: timeoutMs,
        },
        async (c) => ({
          node: await readNodeStats(c),
          writer: isWriter ? await readWriterStats(c) : null,
        }),
      );
      this.publishNode(state, node, writer);
      this.recovered(`database ${state.name}`);
      return true;
    } catch (err) {
      this.failed('database', `database ${state.name}`, err);
      return false;
    }
  }

  private publishNode(state: NodeState, s: NodeStats, w: WriterStats | null): void {
    const m = this.metrics;
    const labels = { node: state.name, role: state.role };
    const previousRole = this.exported.get(state.name);
    if (previousRole !== undefined && previousRole !== state.role) {
      m.removeNode(state.name, previousRole);
    }
    for (const st of new Set<string>([...CONNECTION_STATES, ...Object.keys(s.connections)])) {
      m.connections.set({ ...labels, state: st }, s.connections[st] ?? 0);
    }
    m.maxConnections.set(labels, s.maxConnections);
    m.longestTransaction.set(labels, s.longestTransactionSeconds);
    m.commits.observe(labels, s.commits);
    m.rollbacks.observe(labels, s.rollbacks);
    m.blocksHit.observe(labels, s.blocksHit);
    m.blocksRead.observe(labels, s.blocksRead);
    const blocks = s.blocksHit + s.blocksRead;
    if (blocks > 0) {
      m.cacheHitRatio.set(labels, s.blocksHit / blocks);
    }
    m.deadlocks.observe(labels, s.deadlocks);
    m.tempBytes.observe(labels, s.tempBytes);
    const cpu = this.cpu.add(state.name, s.onCpuSessions);
    if (cpu !== null) {
      m.cpuUtilization.set(labels, cpu);
    }
    if (state.role === 'replica') {
      // The topology monitor measured these in its last round: not queried twice.
      if (state.lastProbe.replayLagSeconds !== null) {
        m.lagSeconds.set(labels, state.lastProbe.replayLagSeconds);
      }
      if (state.lagBytes !== null) {
        m.lagBytes.set(labels, state.lagBytes);
      }
    }
    if (w) {
      if (w.walBytes !== null) {
        m.walBytes.observe(labels, w.walBytes);
      }
      m.archivedWal.observe(labels, w.archivedCount);
      m.archiverFailures.observe(labels, w.archiveFailures);
      m.databaseSize.set(labels, w.databaseSizeBytes);
      m.xidAge.set(labels, w.xidAge);
      m.replicasStreaming.set(labels, w.replicasStreaming);
    }
  }

  private async sampleRedis(): Promise<boolean> {
    try {
      if (!this.redis.isReady) {
        throw new Error(this.redis.error ?? 'not connected');
      }
      const info = parseRedisInfo(await this.withDeadline(this.redis.client.info()));
      const m = this.metrics;
      const node = { node: this.redisNode };
      m.redisMemoryUsed.set(node, info.usedMemoryBytes);
      m.redisMemoryMax.set(node, info.maxMemoryBytes);
      if (info.maxMemoryBytes > 0) {
        m.redisMemoryUtilization.set(node, info.usedMemoryBytes / info.maxMemoryBytes);
      } else {
        m.redisMemoryUtilization.reset();
      }
      m.redisCpu.observe({ ...node, mode: 'sys' }, info.cpuSysSeconds);
      m.redisCpu.observe({ ...node, mode: 'user' }, info.cpuUserSeconds);
      m.redisClients.set(node, info.connectedClients);
      m.redisEvicted.observe(node, info.evictedKeys);
      m.redisHits.observe(node, info.keyspaceHits);
      m.redisMisses.observe(node, info.keyspaceMisses);
      const lookups = info.keyspaceHits + info.keyspaceMisses;
      if (lookups > 0) {
        m.redisHitRatio.set(node, info.keyspaceHits / lookups);
      }
      this.recovered('redis');
      return true;
    } catch (err) {
      // Stale figures of a Redis that does not answer would read as healthy.
      this.metrics.resetRedis();
      this.failed('redis', 'redis', err);
      return false;
    }
  }

  private async samplePgBouncer(): Promise<boolean | null> {
    if (!this.config.pgbouncer) {
      return null;
    }
    try {
      await this.pools.samplePgBouncer();
      this.recovered('pgbouncer');
      return true;
    } catch (err) {
      this.failed('pgbouncer', 'pgbouncer', err);
      return false;
    }
  }

  private withDeadline<T>(work: Promise<T>): Promise<T> {
    const ms = this.config.monitoring.statementTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private failed(source: SampleSource, target: string, err: unknown): void {
    this.metrics.failures.inc({ source });
    const error = err instanceof Error ? err.message : String(err);
    if (this.failing.has(target)) {
      this.logger.debug({ target, error }, 'monitoring sample failed again');
      return;
    }
    this.failing.add(target);
    this.logger.warn({ target, error }, 'monitoring sample failed (logged once until it recovers)');
  }

  private recovered(target: string): void {
    if (this.failing.delete(target)) {
      this.logger.log({ target }, 'monitoring sample recovered');
    }
  }
}
