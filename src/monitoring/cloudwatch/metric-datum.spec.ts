import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  CLOUDWATCH_LIMITS,
  datumBytes,
  RegistryConverter,
  type RegistryMetric,
  splitBatches,
  unitFor,
} from './metric-datum.js';

const NOW = new Date('2026-11-30T12:00:00Z');

function setUp() {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'database-unit' });
  const converter = new RegistryConverter({
    service: 'database-unit',
    environment: 'prod',
    instance: 'host-1',
  });
  const convert = async () =>
    converter.convert((await registry.getMetricsAsJSON()) as unknown as RegistryMetric[], NOW);
  return { registry, convert };
}

const byName = (datums: MetricDatum[], name: string) => datums.filter((d) => d.MetricName === name);

describe(RegistryConverter.name, () => {
  it.each([
    ['http_request_duration_seconds', 'histogram', 'Seconds'],
    ['process_cpu_seconds_total', 'counter', 'Seconds'],
    ['cache_l1_bytes', 'gauge', 'Bytes'],
    ['vector_index_size_bytes', 'gauge', 'Bytes'],
    ['cache_hits_total', 'counter', 'Count'],
    ['vector_search_returned_rows', 'histogram', 'Count'],
    ['dbu_pool_utilization', 'gauge', 'None'],
    ['vector_search_recall', 'histogram', 'None'],
    ['job_ms', 'gauge', 'Milliseconds'],
  ])('unit of %s (%s) is %s', (name, type, unit) => {
    expect(unitFor(name, type)).toBe(unit);
  });

  it('publishes gauges as they are and counters as increases since the last conversion', async () => {
    const { registry, convert } = setUp();
    const g = new Gauge({ name: 'g_bytes', help: 'g', registers: [registry] });
    const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['k'], registers: [registry] });
    g.set(10);
    c.inc({ k: 'a' }, 5);
    const first = (await convert()).datums;
    expect(byName(first, 'g_bytes')[0]).toEqual({
      MetricName: 'g_bytes',
      Dimensions: [
        { Name: 'environment', Value: 'prod' },
        { Name: 'instance', Value: 'host-1' },
        { Name: 'service', Value: 'database-unit' },
      ],
      Timestamp: NOW,
      Unit: 'Bytes',
      Value: 10,
    });
    expect(byName(first, 'c_total')[0]).toMatchObject({ Value: 5, Unit: 'Count' });

    c.inc({ k: 'a' }, 2);
    g.set(3);
    const second = (await convert()).datums;
    expect(byName(second, 'c_total')[0].Value).toBe(2);
    expect(byName(second, 'g_bytes')[0].Value).toBe(3);

    // A reset (the counter went down) counts from zero, never negative.
    c.reset();
    c.inc({ k: 'a' }, 1);
    expect(byName((await convert()).datums, 'c_total')[0].Value).toBe(1);
  });

  it('publishes histograms as Values/Counts of the observations since the last conversion', async () => {
    const { registry, convert } = setUp();
    const h = new Histogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['op'],
      buckets: [0.1, 1, 3],
      registers: [registry],
    });
    h.observe({ op: 'get' }, 0.05);
    h.observe({ op: 'get' }, 0.5);
    h.observe({ op: 'get' }, 0.7);
    h.observe({ op: 'get' }, 10);
    h.observe({ op: 'get' }, 20);
    const [first] = byName((await convert()).datums, 'h_seconds');
    // Overflow: (sum - 0.1 - 2 × 1) / 2 = (31.25 - 2.1) / 2.
    expect(first).toMatchObject({ Unit: 'Seconds', Values: [0.1, 1, 14.575], Counts: [1, 2, 2] });
    expect(first.Dimensions).toContainEqual({ Name: 'op', Value: 'get' });
    expect(first.Dimensions!.map((d) => d.Name)).not.toContain('le');

    h.observe({ op: 'get' }, 2);
    const [second] = byName((await convert()).datums, 'h_seconds');
    expect(second).toMatchObject({ Values: [3], Counts: [1] });

    // No observation in the interval: nothing to send.
    expect(byName((await convert()).datums, 'h_seconds')).toHaveLength(0);
  });

  it('keeps at most 150 values per datum (more buckets: more datums of the same metric)', async () => {
    const { registry, convert } = setUp();
    const buckets = Array.from({ length: 200 }, (_, i) => i + 1);
    const h = new Histogram({ name: 'wide_seconds', help: 'w', buckets, registers: [registry] });
    for (const b of buckets) {
      h.observe(b - 0.5);
    }
    const datums = byName((await convert()).datums, 'wide_seconds');
    expect(datums.map((d) => d.Values!.length)).toEqual([150, 50]);
    expect(datums.flatMap((d) => d.Counts!).reduce((a, b) => a + b, 0)).toBe(200);
  });

  it('adds fleet rollups (service, environment only) for the alarms', async () => {
    const { registry, convert } = setUp();
    const hits = new Counter({
      name: 'cache_hits_total',
      help: 'h',
      labelNames: ['tier'],
      registers: [registry],
    });
    hits.inc({ tier: 'l1' }, 4);
    hits.inc({ tier: 'l2' }, 6);
    const [rollup] = byName((await convert()).datums, 'CacheHits');
    expect(rollup).toEqual({
      MetricName: 'CacheHits',
      Dimensions: [
        { Name: 'service', Value: 'database-unit' },
        { Name: 'environment', Value: 'prod' },
      ],
      Timestamp: NOW,
      Unit: 'Count',
      Value: 10,
    });
  });

  it('maps labels to at most 30 dimensions, skips empty values, reports what it cut', async () => {
    const { registry, convert } = setUp();
    const labelNames = Array.from({ length: 32 }, (_, i) => `l${String(i).padStart(2, '0')}`);
    const g = new Gauge({ name: 'many_labels', help: 'm', labelNames, registers: [registry] });
    g.set(Object.fromEntries(labelNames.map((l) => [l, l === 'l00' ? '' : `v-${l}`])), 1);
    const out = await convert();
    const [datum] = byName(out.datums, 'many_labels');
    expect(datum.Dimensions).toHaveLength(CLOUDWATCH_LIMITS.dimensionsPerDatum);
    expect(datum.Dimensions!.map((d) => d.Name)).not.toContain('l00');
    // environment + instance + 28 of the 32 labels (service, l01..l27); l28..l31 cut.
    expect(out.truncatedLabels).toEqual([
      'many_labels:l28',
      'many_labels:l29',
      'many_labels:l30',
      'many_labels:l31',
    ]);
  });

  it('skips NaN (no sample) and reports values CloudWatch would reject', async () => {
    const { registry, convert } = setUp();
    const g = new Gauge({ name: 'odd', help: 'o', labelNames: ['k'], registers: [registry] });
    g.set({ k: 'nan' }, Number.NaN);
    g.set({ k: 'inf' }, Number.POSITIVE_INFINITY);
    g.set({ k: 'ok' }, 1);
    const out = await convert();
    expect(byName(out.datums, 'odd').map((d) => d.Value)).toEqual([1]);
    expect(out.invalid).toEqual([{ metric: 'odd', value: Number.POSITIVE_INFINITY }]);
  });
});

describe(splitBatches.name, () => {
  const datum = (i: number, pad = 0): MetricDatum => ({
    MetricName: 'm',
    Dimensions: [{ Name: 'n', Value: `${i}`.padEnd(pad, 'x') }],
    Value: i,
  });

  it('closes a batch at 1,000 datums', () => {
    const datums = Array.from({ length: 2_345 }, (_, i) => datum(i));
    const batches = splitBatches(datums);
    expect(batches.map((b) => b.length)).toEqual([1000, 1000, 345]);
    expect(batches.flat()).toEqual(datums);
  });

  it('closes a batch before its JSON passes 1 MB', () => {
    const datums = Array.from({ length: 300 }, (_, i) => datum(i, 10_000));
    const batches = splitBatches(datums);
    expect(batches.length).toBeGreaterThan(2);
    for (const batch of batches) {
      const json = JSON.stringify({ Namespace: 'DatabaseUnit', MetricData: batch });
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(CLOUDWATCH_LIMITS.bytesPerCall);
      expect(batch.length).toBeLessThan(1000);
    }
    expect(batches.flat()).toEqual(datums);
  });

  it('sends a datum alone when it is bigger than the budget (CloudWatch will judge it)', () => {
    const big = datum(1, 2_000);
    expect(
      splitBatches([big, datum(2)], { datumsPerCall: 1000, bytesPerCall: datumBytes(big) }),
    ).toHaveLength(2);
  });
});
