import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { CumulativeCounter } from './cumulative-counter.js';
import { MetricsService } from './metrics.service.js';

/** Names of the sampler's metrics (PostgreSQL, Redis, the sampler itself). */
export enum SamplerMetric {
  Connections = 'dbu_db_connections',
  MaxConnections = 'dbu_db_max_connections',
  LongestTransaction = 'dbu_db_longest_transaction_seconds',
  Commits = 'dbu_db_commits_total',
  Rollbacks = 'dbu_db_rollbacks_total',
  BlocksHit = 'dbu_db_blocks_hit_total',
  BlocksRead = 'dbu_db_blocks_read_total',
  CacheHitRatio = 'dbu_db_cache_hit_ratio',
  Deadlocks = 'dbu_db_deadlocks_total',
  TempBytes = 'dbu_db_temp_bytes_total',
  WalBytes = 'dbu_db_wal_bytes_total',
  ArchivedWal = 'dbu_db_archived_wal_files_total',
  ArchiverFailures = 'dbu_db_archiver_failures_total',
  DatabaseSize = 'dbu_db_size_bytes',
  XidAge = 'dbu_db_xid_wraparound_age',
  ReplicasStreaming = 'dbu_db_replicas_streaming',
  ReplicationLagSeconds = 'dbu_db_replication_lag_seconds',
  ReplicationLagBytes = 'dbu_db_replication_lag_bytes',
  CpuUtilization = 'dbu_db_cpu_utilization_percent',
  RedisMemoryUsed = 'dbu_redis_memory_used_bytes',
  RedisMemoryMax = 'dbu_redis_memory_max_bytes',
  RedisMemoryUtilization = 'dbu_redis_memory_utilization',
  RedisCpu = 'dbu_redis_cpu_seconds_total',
  RedisClients = 'dbu_redis_connected_clients',
  RedisEvictedKeys = 'dbu_redis_evicted_keys_total',
  RedisKeyspaceHits = 'dbu_redis_keyspace_hits_total',
  RedisKeyspaceMisses = 'dbu_redis_keyspace_misses_total',
  RedisHitRatio = 'dbu_redis_hit_ratio',
  SamplerLeader = 'dbu_monitoring_sampler_leader',
  SampleFailures = 'dbu_monitoring_sample_failures_total',
}

export type NodeLabel = 'node' | 'role';

/** pg_stat_activity states, each exported (0 when none) so a state that empties reads 0. */
export const CONNECTION_STATES = [
  'active',
  'idle',
  'idle in transaction',
  'idle in transaction (aborted)',
  'fastpath function call',
  'disabled',
] as const;

/** The sampler's metrics, in the one registry. */
@Injectable()
export class SamplerMetrics {
  readonly connections: Gauge<NodeLabel | 'state'>;
  readonly maxConnections: Gauge<NodeLabel>;
  readonly longestTransaction: Gauge<NodeLabel>;
  readonly commits: CumulativeCounter<NodeLabel>;
  readonly rollbacks: CumulativeCounter<NodeLabel>;
  readonly blocksHit: CumulativeCounter<NodeLabel>;
  readonly blocksRead: CumulativeCounter<NodeLabel>;
  readonly cacheHitRatio: Gauge<NodeLabel>;
  readonly deadlocks: CumulativeCounter<NodeLabel>;
  readonly tempBytes: CumulativeCounter<NodeLabel>;
  readonly walBytes: CumulativeCounter<NodeLabel>;
  readonly archivedWal: CumulativeCounter<NodeLabel>;
  readonly archiverFailures: CumulativeCounter<NodeLabel>;
  readonly databaseSize: Gauge<NodeLabel>;
  readonly xidAge: Gauge<NodeLabel>;
  readonly replicasStreaming: Gauge<NodeLabel>;
  readonly lagSeconds: Gauge<NodeLabel>;
  readonly lagBytes: Gauge<NodeLabel>;
  readonly cpuUtilization: Gauge<NodeLabel>;

  readonly redisMemoryUsed: Gauge<'node'>;
  readonly redisMemoryMax: Gauge<'node'>;
  readonly redisMemoryUtilization: Gauge<'node'>;
  readonly redisCpu: CumulativeCounter<'node' | 'mode'>;
  readonly redisClients: Gauge<'node'>;
  readonly redisEvicted: CumulativeCounter<'node'>;
  readonly redisHits: CumulativeCounter<'node'>;
  readonly redisMisses: CumulativeCounter<'node'>;
  readonly redisHitRatio: Gauge<'node'>;

  readonly leader: Gauge;
  readonly failures: Counter<'source'>;

  constructor(metrics: MetricsService) {
    const registers = [metrics.registry];
    const nodeLabels = ['node', 'role'] as const;
    const gauge = <L extends string>(name: SamplerMetric, help: string, labelNames: readonly L[]) =>
      new Gauge<L>({ name, help, labelNames: [...labelNames], registers });
    const counter = <L extends string>(
      name: SamplerMetric,
      help: string,
      labelNames: readonly L[],
    ) => new CumulativeCounter<L>({ name, help, labelNames, registers });

    this.connections = gauge(
      SamplerMetric.Connections,
      'Client connections by pg_stat_activity state, per node',
      [...nodeLabels, 'state'] as const,
    );
    this.maxConnections = gauge(
      SamplerMetric.MaxConnections,
      'max_connections per node',
      nodeLabels,
    );
    this.cpuUtilization = gauge(
      SamplerMetric.CpuUtilization,
      'Estimated CPU use per node in %: sessions running on a CPU (sampled, mean over the last minute) / MONITORING_DB_VCPUS, at most 100; absent when MONITORING_DB_VCPUS is 0',
      nodeLabels,
    );
    this.longestTransaction = gauge(
      SamplerMetric.LongestTransaction,
      'Age of the oldest open transaction of a client connection (0: none open), per node',
      nodeLabels,
    );
    this.commits = counter(
      SamplerMetric.Commits,
      'Committed transactions (pg_stat_database.xact_commit)',
      nodeLabels,
    );
    this.rollbacks = counter(
      SamplerMetric.Rollbacks,
      'Rolled back transactions (pg_stat_database.xact_rollback)',
      nodeLabels,
    );
    this.blocksHit = counter(
      SamplerMetric.BlocksHit,
      'Block reads served by shared buffers (blks_hit)',
      nodeLabels,
    );
    this.blocksRead = counter(
      SamplerMetric.BlocksRead,
      'Block reads that missed shared buffers (blks_read)',
      nodeLabels,
    );
    this.cacheHitRatio = gauge(
      SamplerMetric.CacheHitRatio,
      'Buffer cache hit ratio blks_hit / (blks_hit + blks_read) since the statistics reset; windowed: rate() of the blocks counters',
      nodeLabels,
    );
    this.deadlocks = counter(
      SamplerMetric.Deadlocks,
      'Deadlocks detected (pg_stat_database.deadlocks)',
      nodeLabels,
    );
    this.tempBytes = counter(
      SamplerMetric.TempBytes,
      'Bytes written to temporary files (pg_stat_database.temp_bytes)',
      nodeLabels,
    );
    this.walBytes = counter(
      SamplerMetric.WalBytes,
      'WAL generated (pg_stat_wal.wal_bytes), writer',
      nodeLabels,
    );
    this.archivedWal = counter(
      SamplerMetric.ArchivedWal,
      'WAL files archived (pg_stat_archiver), writer',
      nodeLabels,
    );
    this.archiverFailures = counter(
      SamplerMetric.ArchiverFailures,
      'Failed WAL archive attempts (pg_stat_archiver.failed_count), writer',
      nodeLabels,
    );
    this.databaseSize = gauge(
      SamplerMetric.DatabaseSize,
      "The service's database size (pg_database_size), writer",
      nodeLabels,
    );
    this.xidAge = gauge(
      SamplerMetric.XidAge,
      'Transactions since the oldest database was frozen (max age(datfrozenxid)); wraparound at 2^31, forced autovacuum at autovacuum_freeze_max_age',
      nodeLabels,
    );
    this.replicasStreaming = gauge(
      SamplerMetric.ReplicasStreaming,
      'Standbys streaming from the writer (pg_stat_replication)',
      nodeLabels,
    );
    this.lagSeconds = gauge(
      SamplerMetric.ReplicationLagSeconds,
      'Replica replay lag in seconds (0 when caught up), from the topology monitor',
      nodeLabels,
    );
    this.lagBytes = gauge(
      SamplerMetric.ReplicationLagBytes,
      "Replica replay position behind the writer's WAL position, bytes, from the topology monitor",
      nodeLabels,
    );

    this.redisMemoryUsed = gauge(SamplerMetric.RedisMemoryUsed, 'Redis used_memory', [
      'node',
    ] as const);
    this.redisMemoryMax = gauge(SamplerMetric.RedisMemoryMax, 'Redis maxmemory (0: no limit)', [
      'node',
    ] as const);
    this.redisMemoryUtilization = gauge(
      SamplerMetric.RedisMemoryUtilization,
      'Redis used_memory / maxmemory (absent without a limit)',
      ['node'] as const,
    );
    this.redisCpu = counter(
      SamplerMetric.RedisCpu,
      'Redis CPU time (used_cpu_sys / used_cpu_user)',
      ['node', 'mode'] as const,
    );
    this.redisClients = gauge(SamplerMetric.RedisClients, 'Redis connected_clients', [
      'node',
    ] as const);
    this.redisEvicted = counter(
      SamplerMetric.RedisEvictedKeys,
      'Keys Redis evicted for maxmemory',
      ['node'] as const,
    );
    this.redisHits = counter(SamplerMetric.RedisKeyspaceHits, 'Redis keyspace_hits', [
      'node',
    ] as const);
    this.redisMisses = counter(SamplerMetric.RedisKeyspaceMisses, 'Redis keyspace_misses', [
      'node',
    ] as const);
    this.redisHitRatio = gauge(
      SamplerMetric.RedisHitRatio,
      'Redis keyspace_hits / (hits + misses) since Redis started',
      ['node'] as const,
    );

    this.leader = gauge(
      SamplerMetric.SamplerLeader,
      '1 on the instance that samples the cluster-wide PostgreSQL figures (only it exports them)',
      [],
    );
    this.failures = new Counter({
      name: SamplerMetric.SampleFailures,
      help: 'Samples that failed, by source (database, redis, pgbouncer)',
      labelNames: ['source'],
      registers,
    });
    for (const source of ['database', 'redis', 'pgbouncer']) {
      this.failures.inc({ source }, 0);
    }
  }

  /** Per-node PostgreSQL gauges labelled {node, role} only. */
  private nodeGauges(): Array<Gauge<NodeLabel>> {
    return [
      this.maxConnections,
      this.longestTransaction,
      this.cacheHitRatio,
      this.databaseSize,
      this.xidAge,
      this.replicasStreaming,
      this.lagSeconds,
      this.lagBytes,
      this.cpuUtilization,
    ];
  }

  private nodeCounters(): Array<CumulativeCounter<NodeLabel>> {
    return [
      this.commits,
      this.rollbacks,
      this.blocksHit,
      this.blocksRead,
      this.deadlocks,
      this.tempBytes,
      this.walBytes,
      this.archivedWal,
      this.archiverFailures,
    ];
  }

  /** Drops one node's PostgreSQL series (down, fenced, or its role changed). */
  removeNode(node: string, role: string): void {
    for (const state of [...CONNECTION_STATES, 'unknown']) {
      this.connections.remove({ node, role, state });
    }
    for (const g of this.nodeGauges()) {
      g.remove({ node, role });
    }
    for (const c of this.nodeCounters()) {
      c.remove({ node, role });
    }
  }

  /** Leadership lost: this instance no longer exports any cluster-wide figure. */
  resetDatabase(): void {
    this.connections.reset();
    for (const g of this.nodeGauges()) {
      g.reset();
    }
    for (const c of this.nodeCounters()) {
      c.reset();
    }
  }

  resetRedis(): void {
    for (const m of [
      this.redisMemoryUsed,
      this.redisMemoryMax,
      this.redisMemoryUtilization,
      this.redisCpu,
      this.redisClients,
      this.redisEvicted,
      this.redisHits,
      this.redisMisses,
      this.redisHitRatio,
    ]) {
      m.reset();
    }
  }
}
