import { createServer } from 'node:net';
import { Test } from '@nestjs/testing';
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { useTestAwsCredentials } from '../../../test/support/aws-credentials.js';
import { testCloudWatchConfig } from '../../../test/support/cloudwatch-config.js';
import { type FakeCloudWatch, startFakeCloudWatch } from '../../../test/support/fake-cloudwatch.js';
import { CacheMetrics } from '../../cache/cache.metrics.js';
import { type AppConfig, type CloudWatchConfig, loadConfig } from '../../config/app-config.js';
import { ConfigModule } from '../../config/config.module.js';
import { SearchMetrics } from '../../recipes/search.metrics.js';
import { MetricsService } from '../metrics.service.js';
import {
  CloudWatchMetric,
  CloudWatchPublisher,
  DropReason,
} from './cloudwatch-publisher.service.js';
import { CLOUDWATCH_LIMITS } from './metric-datum.js';

type Wire = Record<string, unknown> & {
  MetricName: string;
  Dimensions: Array<{ Name: string; Value: string }>;
  Unit?: string;
  Value?: number;
  Values?: number[];
  Counts?: number[];
  Timestamp: number;
};

function setUp(url: string, overrides: Partial<CloudWatchConfig> = {}) {
  const metrics = new MetricsService();
  const config = testCloudWatchConfig(url, overrides);
  const publisher = new CloudWatchPublisher(metrics, { cloudwatch: config } as AppConfig);
  // the production path: the SDK in the publisher's worker thread
  publisher.start();
  return { metrics, publisher };
}

async function counterValue(
  metrics: MetricsService,
  name: string,
  labels: Record<string, string> = {},
) {
  const metric = metrics.registry.getSingleMetric(name);
  const json = await metric!.get();
  return json.values
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

const dims = (d: Wire) => Object.fromEntries(d.Dimensions.map((x) => [x.Name, x.Value]));

function find(datums: Wire[], name: string, labels: Record<string, string>): Wire[] {
  return datums.filter(
    (d) => d.MetricName === name && Object.entries(labels).every(([k, v]) => dims(d)[k] === v),
  );
}

/** A port nothing listens on (bound by the OS, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe(CloudWatchPublisher.name, () => {
  let fake: FakeCloudWatch;
  const started: CloudWatchPublisher[] = [];
  useTestAwsCredentials();

  beforeEach(async () => {
    fake = await startFakeCloudWatch();
  });

  afterEach(async () => {
    for (const p of started.splice(0)) {
      await p.stop();
    }
    await fake.close();
  });

  function make(overrides: Partial<CloudWatchConfig> = {}, url = fake.url) {
    const made = setUp(url, overrides);
    started.push(made.publisher);
    return made;
  }

  it('sends the real registry over the SDK wire protocol: names, units, dimensions, values and deltas', async () => {
    const { metrics, publisher } = make();
    const cache = new CacheMetrics(metrics);
    const search = new SearchMetrics(metrics);
    cache.hits.inc({ tier: 'l1', type: 'recipes' }, 7);
    cache.misses.inc({ tier: 'l1', type: 'recipes' }, 3);
    cache.l1Bytes.set(12_345);
    search.duration.observe({ plan: 'hnsw', mode: 'embedding', filtered: 'false' }, 0.004);
    search.duration.observe({ plan: 'hnsw', mode: 'embedding', filtered: 'false' }, 0.004);
    search.duration.observe({ plan: 'hnsw', mode: 'embedding', filtered: 'false' }, 0.2);
    search.duration.observe({ plan: 'hnsw', mode: 'embedding', filtered: 'false' }, 7); // beyond 3 s
    metrics.httpDuration.observe({ method: 'GET', route: '/v1/recipes/:id', status: '200' }, 0.03);

    // Metrics with a sample now (values only appear, never vanish, before the collect).
    const withData = (await metrics.registry.getMetricsAsJSON()).filter((m) =>
      String(m.type) === 'histogram'
        ? m.values.some((v) => v.value > 0)
        : m.values.some((v) => !Number.isNaN(v.value)),
    );
    await publisher.publish();

    const puts = fake.calls.filter((c) => c.operation === 'PutMetricData');
    expect(puts).toHaveLength(1);
    // awsJson1_0 in query-compatible mode: what client-cloudwatch 3.1164 sends.
    expect(puts[0].headers['x-amz-target']).toBe('GraniteServiceVersion20100801.PutMetricData');
    expect(puts[0].headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(puts[0].headers['x-amzn-query-mode']).toBe('true');
    expect(puts[0].headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDTEST\//);
    expect(puts[0].body.Namespace).toBe('DatabaseUnitTest');

    const datums = fake.acceptedDatums() as Wire[];
    // Every metric that had data before the publish arrives, under its own name.
    const sentNames = new Set(datums.map((d) => d.MetricName));
    for (const json of withData) {
      expect({ name: json.name, sent: sentNames.has(json.name) }).toEqual({
        name: json.name,
        sent: true,
      });
    }
    expect(withData.length).toBeGreaterThan(20);

    const [hits] = find(datums, 'cache_hits_total', { tier: 'l1', type: 'recipes' });
    expect(hits.Value).toBe(7);
    expect(hits.Unit).toBe('Count');
    expect(typeof hits.Timestamp).toBe('number'); // epoch seconds on the wire
    expect(dims(hits)).toEqual({
      environment: 'test',
      instance: expect.any(String),
      service: 'database-unit',
      tier: 'l1',
      type: 'recipes',
    });
    expect(hits.Dimensions.map((d) => d.Name)).toEqual([
      'environment',
      'instance',
      'service',
      'tier',
      'type',
    ]);
    const [bytes] = find(datums, 'cache_l1_bytes', {});
    expect(bytes).toMatchObject({ Value: 12_345, Unit: 'Bytes' });

    const [latency] = find(datums, 'vector_search_duration_seconds', {
      plan: 'hnsw',
      mode: 'embedding',
      filtered: 'false',
    });
    expect(latency.Unit).toBe('Seconds');
    // Bucket upper bounds stand for their observations; the overflow's mean comes from _sum.
    const expectedOverflow = 0.004 + 0.004 + 0.2 + 7 - (0.005 * 2 + 0.25);
    expect(latency.Values).toEqual([0.005, 0.25, expectedOverflow]);
    expect(latency.Counts).toEqual([2, 1, 1]);
    const registryCount = await counterValue(metrics, 'vector_search_duration_seconds');
    expect(registryCount).toBeGreaterThan(0);

    const [http] = find(datums, 'http_request_duration_seconds', { route: '/v1/recipes/:id' });
    expect(http).toMatchObject({ Values: [0.05], Counts: [1], Unit: 'Seconds' });

    // Fleet rollups the alarms read: no instance, no labels.
    const fleet = datums.filter((d) => !('instance' in dims(d)));
    expect(fleet.map((d) => d.MetricName).sort()).toEqual([
      'CacheHits',
      'CacheMisses',
      'VectorSearchLatency',
    ]);
    expect(find(fleet, 'CacheHits', {})[0]).toMatchObject({
      Value: 7,
      Dimensions: [
        { Name: 'service', Value: 'database-unit' },
        { Name: 'environment', Value: 'test' },
      ],
    });
    expect(find(fleet, 'VectorSearchLatency', {})[0].Counts).toEqual([2, 1, 1]);

    // Second interval: counters and histograms as deltas, gauges as they are.
    cache.hits.inc({ tier: 'l1', type: 'recipes' }, 2);
    search.duration.observe({ plan: 'hnsw', mode: 'embedding', filtered: 'false' }, 0.04);
    const before = fake.acceptedDatums().length;
    await publisher.publish();
    const second = (fake.acceptedDatums() as Wire[]).slice(before);
    expect(find(second, 'cache_hits_total', { tier: 'l1', type: 'recipes' })[0].Value).toBe(2);
    expect(find(second, 'cache_misses_total', { tier: 'l1', type: 'recipes' })[0].Value).toBe(0);
    expect(find(second, 'cache_l1_bytes', {})[0].Value).toBe(12_345);
    expect(find(second, 'vector_search_duration_seconds', { plan: 'hnsw' })[0]).toMatchObject({
      Values: [0.05],
      Counts: [1],
    });
    // The first call's datums are counted as sent.
    expect(await counterValue(metrics, CloudWatchMetric.Sent)).toBe(fake.acceptedDatums().length);
    expect(await counterValue(metrics, CloudWatchMetric.Dropped)).toBe(0);
  });

  it('splits at 1,000 datums and at 1 MB per call, in order, nothing lost', async () => {
    const { metrics, publisher } = make();
    const wide = new Gauge({
      name: 'test_wide_series',
      help: 'many series',
      labelNames: ['n'],
      registers: [metrics.registry],
    });
    for (let n = 0; n < 2_500; n += 1) {
      wide.set({ n: String(n) }, n);
    }
    // 40 series of 20 labels of 1,000 characters each: ~25 KB per datum, so ~40 per MB.
    const labelNames = Array.from({ length: 20 }, (_, i) => `l${i}`);
    const fat = new Gauge({
      name: 'test_fat_series',
      help: 'big dimensions',
      labelNames: ['n', ...labelNames],
      registers: [metrics.registry],
    });
    for (let n = 0; n < 80; n += 1) {
      const labels: Record<string, string> = { n: String(n) };
      for (const l of labelNames) {
        labels[l] = `${l}-${n}-`.padEnd(1_000, 'x');
      }
      fat.set(labels, n);
    }

    await publisher.publish();

    const puts = fake.calls.filter((c) => c.operation === 'PutMetricData');
    expect(puts.every((c) => c.status === 200)).toBe(true);
    for (const call of puts) {
      expect((call.body.MetricData as unknown[]).length).toBeLessThanOrEqual(
        CLOUDWATCH_LIMITS.datumsPerCall,
      );
      expect(call.jsonBytes).toBeLessThanOrEqual(1_000_000);
    }
    expect(
      puts.some((c) => (c.body.MetricData as unknown[]).length === CLOUDWATCH_LIMITS.datumsPerCall),
    ).toBe(true);
    // The fat series forced calls that the byte budget closed well before 1,000 datums.
    expect(puts.some((c) => c.jsonBytes > 900_000)).toBe(true);
    expect(puts.some((c) => c.headers['content-encoding'] === 'gzip')).toBe(true);
    const datums = fake.acceptedDatums() as Wire[];
    const wideSent = datums.filter((d) => d.MetricName === 'test_wide_series');
    expect(wideSent.map((d) => d.Value).sort((a, b) => a! - b!)).toEqual(
      Array.from({ length: 2_500 }, (_, n) => n),
    );
    expect(datums.filter((d) => d.MetricName === 'test_fat_series')).toHaveLength(80);
    expect(publisher.pending).toBe(0);
  });

  it('retries a throttled call with backoff and delivers it once', async () => {
    const { metrics, publisher } = make();
    const cache = new CacheMetrics(metrics);
    cache.hits.inc({ tier: 'l2', type: 'recipes' }, 5);
    fake.failNext('throttle');

    await publisher.publish();

    const puts = fake.calls.filter((c) => c.operation === 'PutMetricData');
    expect(puts.map((c) => c.status)).toEqual([400, 200]);
    expect(puts[1].body).toEqual(puts[0].body);
    expect(puts[1].headers['amz-sdk-request']).toMatch(/attempt=2/);
    expect(find(fake.acceptedDatums() as Wire[], 'cache_hits_total', { tier: 'l2' })[0].Value).toBe(
      5,
    );
    expect(await counterValue(metrics, CloudWatchMetric.Dropped)).toBe(0);
    expect(await counterValue(metrics, CloudWatchMetric.FailedCalls)).toBe(0);
  });

  it('an outage longer than the retries keeps a bounded backlog, counts the loss, and recovers', async () => {
    const { metrics, publisher } = make({ maxBacklog: 1_000, maxAttempts: 2 });
    const g = new Gauge({
      name: 'test_outage',
      help: 'x',
      labelNames: ['n'],
      registers: [metrics.registry],
    });
    for (let n = 0; n < 300; n += 1) {
      g.set({ n: String(n) }, n);
    }
    // Five intervals (5 minutes at 60 s) of 500s, each tick's call retried once.
    fake.failNext(...Array<'internal'>(10).fill('internal'));
    for (let tick = 0; tick < 5; tick += 1) {
      await publisher.publish();
      expect(publisher.pending).toBeLessThanOrEqual(1_000);
    }
    expect(fake.acceptedDatums()).toHaveLength(0);
    expect(fake.calls.filter((c) => c.status === 500)).toHaveLength(10);
    const dropped = await counterValue(metrics, CloudWatchMetric.Dropped, {
      reason: DropReason.BacklogFull,
    });
    expect(dropped).toBeGreaterThan(0);
    expect(publisher.pending).toBe(1_000);
    expect(await counterValue(metrics, CloudWatchMetric.FailedCalls, { kind: 'retryable' })).toBe(
      5,
    );

    // CloudWatch is back: the next interval delivers the backlog and its own sample.
    await publisher.publish();
    expect(publisher.pending).toBe(0);
    // Nothing vanished silently: every collected datum was delivered or counted as dropped.
    expect(
      fake.acceptedDatums().length + (await counterValue(metrics, CloudWatchMetric.Dropped)),
    ).toBe(publisher.collected);
    // The newest samples survived: the last interval's 300 series all arrived.
    const outage = (fake.acceptedDatums() as Wire[]).filter((d) => d.MetricName === 'test_outage');
    expect(outage.length).toBeGreaterThanOrEqual(300);
  });

  it('with the endpoint unreachable, a tick returns at once and the loss is counted', async () => {
    const port = await closedPort();
    const { metrics, publisher } = make(
      { maxBacklog: 1_000, maxAttempts: 2 },
      `http://127.0.0.1:${port}`,
    );
    const g = new Gauge({
      name: 'test_unreachable',
      help: 'x',
      labelNames: ['n'],
      registers: [metrics.registry],
    });
    for (let n = 0; n < 400; n += 1) {
      g.set({ n: String(n) }, n);
    }
    for (let tick = 0; tick < 5; tick += 1) {
      // The timer's callback: synchronous, nothing to await, nothing thrown.
      expect(publisher.tick()).toBeUndefined();
      await publisher.flush();
    }
    expect(publisher.pending).toBeLessThanOrEqual(1_000);
    const dropped = await counterValue(metrics, CloudWatchMetric.Dropped, {
      reason: DropReason.BacklogFull,
    });
    expect(dropped).toBeGreaterThan(0);
    expect(
      await counterValue(metrics, CloudWatchMetric.FailedCalls, { kind: 'retryable' }),
    ).toBeGreaterThan(0);
    // Stopping counts what is still queued (the last flush cannot reach CloudWatch either).
    const pending = publisher.pending;
    await publisher.stop();
    expect(
      await counterValue(metrics, CloudWatchMetric.Dropped, { reason: DropReason.Shutdown }),
    ).toBeGreaterThanOrEqual(pending);
  });

  it('while a call hangs, ticks return at once and only collect; one flush at a time', async () => {
    const { metrics, publisher } = make({ maxAttempts: 1 });
    const g = new Gauge({ name: 'test_hang', help: 'x', registers: [metrics.registry] });
    g.set(1);
    fake.failNext('hang');
    publisher.tick();
    while (fake.calls.length === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const before = publisher.pending;
    for (let i = 0; i < 3; i += 1) {
      expect(publisher.tick()).toBeUndefined();
      await publisher.collect();
    }
    // The ticks collected behind the hung call; no second call was started.
    expect(publisher.pending).toBeGreaterThan(before);
    expect(fake.calls).toHaveLength(1);
    // The endpoint drops the connection: the batch returns to the backlog, nothing is lost.
    const flushing = publisher.flush();
    await fake.close();
    await flushing;
    expect(fake.acceptedDatums()).toHaveLength(0);
    expect(await counterValue(metrics, CloudWatchMetric.Dropped)).toBe(0);
    expect(publisher.pending).toBe(publisher.collected);
    fake = await startFakeCloudWatch(); // for afterEach
    await publisher.stop();
  });

  it('as a Nest provider: off by default; with CLOUDWATCH_ENABLED it publishes on its timer and flushes at shutdown', async () => {
    const boot = async (env: Record<string, string>) => {
      const moduleRef = await Test.createTestingModule({
        imports: [ConfigModule.forRoot(loadConfig({ NODE_ENV: 'test', ...env }))],
        providers: [MetricsService, CloudWatchPublisher],
      }).compile();
      await moduleRef.init(); // runs onApplicationBootstrap
      return moduleRef;
    };
    const off = await boot({ CLOUDWATCH_ENDPOINT: fake.url, CLOUDWATCH_INTERVAL_SECONDS: '1' });
    const on = await boot({
      CLOUDWATCH_ENABLED: 'true',
      CLOUDWATCH_ENDPOINT: fake.url,
      CLOUDWATCH_INTERVAL_SECONDS: '1',
      CLOUDWATCH_NAMESPACE: 'ViaNest',
      CLOUDWATCH_ENVIRONMENT: 'staging',
    });
    try {
      expect(off.get(CloudWatchPublisher).enabled).toBe(false);
      // Two ticks of the 1 s timer.
      while (fake.calls.filter((c) => c.operation === 'PutMetricData').length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await off.close();
      await on.close();
    }
    const puts = fake.calls.filter((c) => c.operation === 'PutMetricData');
    expect(puts.every((c) => c.body.Namespace === 'ViaNest')).toBe(true);
    const datums = fake.acceptedDatums() as Wire[];
    expect(datums.every((d) => dims(d).environment === 'staging')).toBe(true);
    // The closing flush left nothing behind, nothing was dropped.
    const publisher = on.get(CloudWatchPublisher);
    expect(publisher.pending).toBe(0);
    expect(datums).toHaveLength(publisher.collected);
  });
});
