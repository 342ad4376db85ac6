import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsService } from '../monitoring/metrics.service.js';

export enum CacheMetric {
  Hits = 'cache_hits_total',
  Misses = 'cache_misses_total',
  L1Evictions = 'cache_l1_evictions_total',
  L1Bytes = 'cache_l1_bytes',
  L2EvictedKeys = 'cache_l2_evicted_keys',
  OpDuration = 'cache_operation_duration_seconds',
  WriteBehindDepth = 'cache_write_behind_queue_depth',
  WriteBehindLag = 'cache_write_behind_flush_lag_seconds',
  InvalidationsSent = 'cache_invalidations_sent_total',
  InvalidationsReceived = 'cache_invalidations_received_total',
  L2Circuit = 'cache_l2_circuit_open',
  GenerationBumps = 'cache_generation_bumps_total',
  GenerationTouches = 'cache_generation_touches_total',
}

@Injectable()
export class CacheMetrics {
  readonly hits: Counter<'tier' | 'type'>;
  readonly misses: Counter<'tier' | 'type'>;
  readonly l1Evictions: Counter;
  readonly l1Bytes: Gauge;
  readonly l2EvictedKeys: Gauge;
  readonly opDuration: Histogram<'tier' | 'op'>;
  readonly writeBehindDepth: Gauge;
  readonly writeBehindLag: Histogram;
  readonly invalidationsSent: Counter<'type'>;
  readonly invalidationsReceived: Counter<'type'>;
  readonly l2CircuitOpen: Gauge;
  readonly generationBumps: Counter<'type'>;
  readonly generationTouches: Counter<'type'>;

  constructor(metrics: MetricsService) {
    const registers = [metrics.registry];
    this.hits = new Counter({
      name: CacheMetric.Hits,
      help: 'Cache hits by tier and type',
      labelNames: ['tier', 'type'],
      registers,
    });
    this.misses = new Counter({
      name: CacheMetric.Misses,
      help: 'Cache misses by tier and type',
      labelNames: ['tier', 'type'],
      registers,
    });
    this.l1Evictions = new Counter({
      name: CacheMetric.L1Evictions,
      help: 'L1 entries evicted by the byte bound',
      registers,
    });
    this.l1Bytes = new Gauge({
      name: CacheMetric.L1Bytes,
      help: 'Bytes held by L1 (UTF-16 estimate)',
      registers,
    });
    this.l2EvictedKeys = new Gauge({
      name: CacheMetric.L2EvictedKeys,
      help: 'Redis evicted_keys (INFO stats)',
      registers,
    });
    this.opDuration = new Histogram({
      name: CacheMetric.OpDuration,
      help: 'Cache operation latency by tier and operation',
      labelNames: ['tier', 'op'],
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
      registers,
    });
    this.writeBehindDepth = new Gauge({
      name: CacheMetric.WriteBehindDepth,
      help: 'Write-behind changes queued and not yet persisted',
      registers,
    });
    this.writeBehindLag = new Histogram({
      name: CacheMetric.WriteBehindLag,
      help: 'Time from a write-behind change being queued to it being persisted in PostgreSQL',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    this.invalidationsSent = new Counter({
      name: CacheMetric.InvalidationsSent,
      help: 'Invalidation messages published',
      labelNames: ['type'],
      registers,
    });
    this.invalidationsReceived = new Counter({
      name: CacheMetric.InvalidationsReceived,
      help: 'Invalidation messages received from other instances',
      labelNames: ['type'],
      registers,
    });
    this.l2CircuitOpen = new Gauge({
      name: CacheMetric.L2Circuit,
      help: '1 while the Redis circuit breaker is open',
      registers,
    });
    this.generationBumps = new Counter({
      name: CacheMetric.GenerationBumps,
      help: 'Generation bumps sent to Redis (each makes every cached entry of the type unreachable)',
      labelNames: ['type'],
      registers,
    });
    this.generationTouches = new Counter({
      name: CacheMetric.GenerationTouches,
      help: 'Changes that made stale only the cached entries holding the changed rows',
      labelNames: ['type'],
      registers,
    });
  }
}
