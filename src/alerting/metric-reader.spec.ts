import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AlertRule } from '../config/alerting.config.js';
import { Baseline, readRuleValue } from './metric-reader.js';

function rule(over: Partial<AlertRule>): AlertRule {
  return {
    name: 'r',
    metric: 'm',
    labels: {},
    aggregation: 'max',
    comparison: 'GreaterThanThreshold',
    threshold: 0,
    forSeconds: 0,
    severity: 'high',
    summary: 's',
    ...over,
  };
}

describe(readRuleValue.name, () => {
  let registry: Registry;
  let baselines: Map<string, Baseline>;

  beforeEach(() => {
    registry = new Registry();
    baselines = new Map();
  });

  it('reduces the series matching the labels (one value, or any of several)', async () => {
    const g = new Gauge({
      name: 'g',
      help: 'g',
      labelNames: ['role', 'node'],
      registers: [registry],
    });
    g.set({ role: 'primary', node: 'a' }, 10);
    g.set({ role: 'primary', node: 'b' }, 30);
    g.set({ role: 'replica', node: 'c' }, 99);
    const read = (over: Partial<AlertRule>): Promise<number | null> =>
      readRuleValue(registry, rule({ metric: 'g', ...over }), baselines, 0);
    await expect(read({ labels: { role: 'primary' }, aggregation: 'sum' })).resolves.toBe(40);
    await expect(read({ labels: { role: 'primary' }, aggregation: 'min' })).resolves.toBe(10);
    await expect(read({ labels: { role: 'primary' }, aggregation: 'avg' })).resolves.toBe(20);
    await expect(read({ aggregation: 'max' })).resolves.toBe(99);
    await expect(read({ labels: { node: ['a', 'c'] }, aggregation: 'sum' })).resolves.toBe(109);
    await expect(read({ labels: { role: 'none' } })).resolves.toBeNull();
    await expect(read({ metric: 'absent' })).resolves.toBeNull();
  });

  it('increase and rate: nothing on the first read, then the growth since the last one', async () => {
    const c = new Counter({ name: 'c_total', help: 'c', registers: [registry] });
    const inc = rule({ name: 'inc', metric: 'c_total', aggregation: 'increase' });
    const rate = rule({ name: 'rate', metric: 'c_total', aggregation: 'rate' });
    c.inc(5);
    await expect(readRuleValue(registry, inc, baselines, 0)).resolves.toBeNull();
    await expect(readRuleValue(registry, rate, baselines, 0)).resolves.toBeNull();
    c.inc(4);
    await expect(readRuleValue(registry, inc, baselines, 2000)).resolves.toBe(4);
    await expect(readRuleValue(registry, rate, baselines, 2000)).resolves.toBe(2);
    await expect(readRuleValue(registry, inc, baselines, 4000)).resolves.toBe(0);
  });

  it('p95 of the observations since the last read, interpolated within the bucket', async () => {
    const h = new Histogram({
      name: 'h_seconds',
      help: 'h',
      buckets: [1, 2, 4],
      registers: [registry],
    });
    const p95 = rule({ metric: 'h_seconds', aggregation: 'p95' });
    for (let i = 0; i < 100; i++) {
      h.observe(0.5);
    }
    await expect(readRuleValue(registry, p95, baselines, 0)).resolves.toBeNull();
    // Since then: 10 fast, 90 between 2 and 4 s.
    for (let i = 0; i < 10; i++) {
      h.observe(0.5);
    }
    for (let i = 0; i < 90; i++) {
      h.observe(3);
    }
    const value = await readRuleValue(registry, p95, baselines, 1000);
    // rank 95 of 100: 85 of the 90 in (2, 4] → 2 + 2 * 85/90.
    expect(value).toBeCloseTo(2 + (2 * 85) / 90, 6);
    // No observations since: no value.
    await expect(readRuleValue(registry, p95, baselines, 2000)).resolves.toBeNull();
  });
});
