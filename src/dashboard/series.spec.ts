import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  activeAlerts,
  Chart,
  copySnapshot,
  point,
  quantileOfIncrease,
  RegistrySnapshot,
} from './series.js';

/** A registry with the metrics the page reads, as the service names them. */
function registry(): {
  reg: Registry;
  http: Histogram<'method' | 'route' | 'status'>;
  search: Histogram<'plan'>;
  recall: Histogram<'plan'>;
  hits: Counter<'tier'>;
  misses: Counter<'tier'>;
  lag: Gauge<'replica'>;
  alert: Gauge<'alert' | 'severity'>;
  snap: () => Promise<RegistrySnapshot>;
} {
  const reg = new Registry();
  reg.setDefaultLabels({ service: 'database-unit' });
  const registers = [reg];
  const buckets = [0.001, 0.01, 0.1, 1];
  const m = {
    reg,
    http: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'h',
      labelNames: ['method', 'route', 'status'] as const,
      buckets,
      registers,
    }),
    search: new Histogram({
      name: 'vector_search_duration_seconds',
      help: 'h',
      labelNames: ['plan'] as const,
      buckets,
      registers,
    }),
    recall: new Histogram({
      name: 'vector_search_recall',
      help: 'h',
      labelNames: ['plan'] as const,
      buckets: [0.5, 0.9, 1],
      registers,
    }),
    hits: new Counter({
      name: 'cache_hits_total',
      help: 'h',
      labelNames: ['tier'] as const,
      registers,
    }),
    misses: new Counter({
      name: 'cache_misses_total',
      help: 'h',
      labelNames: ['tier'] as const,
      registers,
    }),
    lag: new Gauge({
      name: 'dbu_db_replication_lag_seconds',
      help: 'h',
      labelNames: ['replica'] as const,
      registers,
    }),
    alert: new Gauge({
      name: 'dbu_backup_alert',
      help: 'h',
      labelNames: ['alert', 'severity'] as const,
      registers,
    }),
    snap: async () => copySnapshot(await reg.getMetricsAsJSON()),
  };
  return m;
}

describe(point.name, () => {
  it('rates, quantiles, recall and hit rates over the interval only', async () => {
    const m = registry();
    // before the interval: must not count
    m.http.observe({ method: 'GET', route: '/x', status: '200' }, 5);
    m.hits.inc({ tier: 'l1' }, 100);
    const prev = await m.snap();
    for (let i = 0; i < 8; i += 1) {
      m.http.observe({ method: 'GET', route: '/x', status: '200' }, 0.005);
    }
    m.http.observe({ method: 'GET', route: '/x', status: '503' }, 0.05);
    m.http.observe({ method: 'POST', route: '/y', status: '500' }, 0.05);
    m.recall.observe({ plan: 'hnsw' }, 0.8);
    m.recall.observe({ plan: 'hnsw' }, 1);
    m.hits.inc({ tier: 'l1' }, 3);
    m.misses.inc({ tier: 'l1' }, 1);
    m.misses.inc({ tier: 'l2' }, 2);
    m.lag.set({ replica: 'r1' }, 0.25);
    const p = point(prev, await m.snap(), 2, { primary: 0.5 });
    expect(p[Chart.Requests]).toEqual({ all: 5, '5xx': 1 });
    // 10 observations: 8 in (0.001, 0.01], 2 in (0.01, 0.1]; p50 interpolated in the first
    expect(p[Chart.RequestLatency].p50).toBeCloseTo(1 + (9 * 5) / 8, 1);
    expect(p[Chart.RequestLatency].p95).toBeCloseTo(10 + (90 * 1.5) / 2, 1);
    expect(p[Chart.SearchLatency]).toEqual({ p50: null, p95: null });
    expect(p[Chart.SearchRecall].mean).toBeCloseTo(0.9, 10);
    expect(p[Chart.CacheHitRate]).toEqual({ l1: 0.75, l2: 0 });
    expect(p[Chart.ReplicationLag]).toEqual({ 'replica=r1': 0.25 });
    expect(p[Chart.PoolUtilisation]).toEqual({ primary: 0.5 });
  });

  it('a counter that went down (process restart) counts from zero', async () => {
    const a = registry();
    a.hits.inc({ tier: 'l1' }, 50);
    const before = await a.snap();
    const b = registry();
    b.hits.inc({ tier: 'l1' }, 4);
    const p = point(before, await b.snap(), 1);
    expect(p[Chart.CacheHitRate]).toEqual({ l1: 1 });
  });
});

describe(quantileOfIncrease.name, () => {
  it('is null when nothing was observed in the interval', async () => {
    const m = registry();
    m.search.observe({ plan: 'hnsw' }, 0.02);
    const s = await m.snap();
    expect(quantileOfIncrease(s, s, 'vector_search_duration_seconds', 0.5)).toBeNull();
  });

  it('an observation past the last bucket reports the last finite bound', async () => {
    const m = registry();
    const prev = await m.snap();
    m.search.observe({ plan: 'hnsw' }, 7);
    expect(quantileOfIncrease(prev, await m.snap(), 'vector_search_duration_seconds', 0.5)).toBe(1);
  });
});

describe(activeAlerts.name, () => {
  it('lists alert gauges at 1 with their severity, not those at 0', async () => {
    const m = registry();
    m.alert.set({ alert: 'backup_failed', severity: 'critical' }, 1);
    m.alert.set({ alert: 'restoration_test_failed', severity: 'high' }, 0);
    expect(activeAlerts(await m.snap())).toEqual([
      { alert: 'backup_failed', severity: 'critical', labels: {} },
    ]);
  });

  it('lists an alert raised by its gauge and by the alerting rules once', async () => {
    const m = registry();
    m.alert.set({ alert: 'backup_failed', severity: 'critical' }, 1);
    const firing = new Gauge({
      name: 'dbu_alerts_firing',
      help: 'f',
      labelNames: ['alert', 'severity'],
      registers: [m.reg],
    });
    firing.set({ alert: 'backup_failed', severity: 'critical' }, 1);
    firing.set({ alert: 'node_fenced', severity: 'critical' }, 1);
    expect(activeAlerts(await m.snap())).toEqual([
      { alert: 'backup_failed', severity: 'critical', labels: {} },
      { alert: 'node_fenced', severity: 'critical', labels: {} },
    ]);
  });
});
