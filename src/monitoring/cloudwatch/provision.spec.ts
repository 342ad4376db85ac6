import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTestAwsCredentials } from '../../../test/support/aws-credentials.js';
import { type FakeCloudWatch, startFakeCloudWatch } from '../../../test/support/fake-cloudwatch.js';
import type { CloudWatchConfig } from '../../config/app-config.js';
import { createCloudWatchClient, createCloudWatchLogsClient } from './cloudwatch-clients.js';
import {
  buildProvisionPlan,
  SPEC_DASHBOARDS,
  SPEC_METRIC_FILTERS,
} from './cloudwatch-resources.js';
import { applyProvisionPlan } from './provision.js';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:database-alerts';

function config(url: string, overrides: Partial<CloudWatchConfig> = {}): CloudWatchConfig {
  return {
    enabled: false,
    namespace: 'DatabaseUnit',
    region: 'eu-west-1',
    endpoint: url,
    intervalMs: 60_000,
    maxBacklog: 20_000,
    maxAttempts: 3,
    environment: 'production',
    logGroup: '/database-unit/service',
    logRetentionDays: 30,
    alarmTopicArn: TOPIC,
    rdsInstances: ['dbu-primary', 'dbu-replica-1'],
    elastiCacheClusters: ['dbu-redis-001'],
    ...overrides,
  };
}

type Widget = { type: string; properties: Record<string, unknown> };

describe('cloudwatch:provision', () => {
  let fake: FakeCloudWatch;
  useTestAwsCredentials();

  beforeEach(async () => {
    fake = await startFakeCloudWatch();
  });

  afterEach(async () => {
    await fake.close();
  });

  async function provision(cfg: CloudWatchConfig) {
    const cw = createCloudWatchClient(cfg);
    const logs = createCloudWatchLogsClient(cfg);
    try {
      return await applyProvisionPlan(buildProvisionPlan(cfg), cw, logs);
    } finally {
      cw.destroy();
      logs.destroy();
    }
  }

  it('puts the spec dashboards, alarms, metric filters and retention; a second run makes the same calls', async () => {
    const cfg = config(fake.url);
    const first = await provision(cfg);
    expect(first.logGroupCreated).toBe(true);
    const firstCalls = fake.calls.splice(0);
    const state = {
      dashboards: new Map(fake.dashboards),
      alarms: new Map(fake.alarms),
      filters: new Map(fake.metricFilters),
      groups: JSON.stringify([...fake.logGroups]),
    };

    const second = await provision(cfg);
    expect(second.logGroupCreated).toBe(false);
    const secondCalls = fake.calls.splice(0);
    const shape = (calls: typeof firstCalls) =>
      calls.map((c) => ({ op: `${c.service}.${c.operation}`, body: c.body }));
    expect(shape(secondCalls)).toEqual(shape(firstCalls));
    expect(fake.dashboards).toEqual(state.dashboards);
    expect(fake.alarms).toEqual(state.alarms);
    expect(fake.metricFilters).toEqual(state.filters);
    expect(JSON.stringify([...fake.logGroups])).toBe(state.groups);

    expect(firstCalls.map((c) => `${c.service}.${c.operation}`)).toEqual([
      'cloudwatch.PutDashboard',
      'cloudwatch.PutDashboard',
      'cloudwatch.PutDashboard',
      ...Array<string>(6).fill('cloudwatch.PutMetricAlarm'),
      'logs.CreateLogGroup',
      'logs.PutRetentionPolicy',
      'logs.PutMetricFilter',
      'logs.PutMetricFilter',
      'logs.PutMetricFilter',
    ]);
    // The wire protocols: awsJson1_0 (query-compatible) for CloudWatch, awsJson1_1 for Logs.
    const logsCall = firstCalls.find((c) => c.operation === 'PutMetricFilter')!;
    expect(logsCall.headers['x-amz-target']).toBe('Logs_20140328.PutMetricFilter');
    expect(logsCall.headers['content-type']).toBe('application/x-amz-json-1.1');
    const cwCall = firstCalls.find((c) => c.operation === 'PutDashboard')!;
    expect(cwCall.headers['x-amz-target']).toBe('GraniteServiceVersion20100801.PutDashboard');
    expect(cwCall.headers['content-type']).toBe('application/x-amz-json-1.0');
    // Logs answered 400 ResourceAlreadyExists on the second run, handled.
    expect(secondCalls.find((c) => c.operation === 'CreateLogGroup')!.status).toBe(400);
  });

  it('dashboards: the spec widgets in order, periods from the refresh intervals, RDS and ElastiCache metrics', async () => {
    await provision(config(fake.url));
    expect([...fake.dashboards.keys()]).toEqual([
      'DatabaseUnit-production-database_overview',
      'DatabaseUnit-production-cache_performance',
      'DatabaseUnit-production-vector_search_analytics',
    ]);
    const periods: Record<string, number> = {
      database_overview: 60,
      cache_performance: 60,
      vector_search_analytics: 120,
    };
    for (const [name, spec] of Object.entries(SPEC_DASHBOARDS)) {
      const body = JSON.parse(fake.dashboards.get(`DatabaseUnit-production-${name}`)!) as {
        widgets: Widget[];
        periodOverride: string;
      };
      expect(body.periodOverride).toBe('inherit');
      const [header, ...widgets] = body.widgets;
      expect(header.properties.markdown).toContain(
        `Spec refresh interval: ${spec.refreshSeconds} s`,
      );
      const keys = widgets.map((w) =>
        w.type === 'metric'
          ? String(w.properties.title).split(':')[0]
          : String(w.properties.markdown).split('\n')[0].replace('### ', ''),
      );
      expect(keys).toEqual([...spec.widgets]);
      for (const w of widgets.filter((x) => x.type === 'metric')) {
        expect(w.properties.period).toBe(periods[name]);
        expect(w.properties.region).toBe('eu-west-1');
      }
    }
    const overview = JSON.parse(
      fake.dashboards.get('DatabaseUnit-production-database_overview')!,
    ) as {
      widgets: Widget[];
    };
    const cpu = overview.widgets[1].properties.metrics as unknown[][];
    expect(cpu).toContainEqual([
      'AWS/RDS',
      'CPUUtilization',
      'DBInstanceIdentifier',
      'dbu-replica-1',
      { stat: 'Average', label: 'dbu-replica-1 CPUUtilization' },
    ]);
    expect(JSON.stringify(cpu)).toContain(
      `SEARCH('{DatabaseUnit,environment,instance,service} MetricName=\\"process_cpu_seconds_total\\" environment=\\"production\\"', 'Sum', 60)`,
    );
    const cache = JSON.parse(fake.dashboards.get('DatabaseUnit-production-cache_performance')!) as {
      widgets: Widget[];
    };
    const hitRate = cache.widgets[1].properties.metrics as unknown[][];
    expect(hitRate[0]).toEqual([
      { expression: '100 * hits / (hits + misses)', label: 'hit rate %', id: 'rate' },
    ]);
    expect(hitRate[1]).toEqual([
      'DatabaseUnit',
      'CacheHits',
      'service',
      'database-unit',
      'environment',
      'production',
      { stat: 'Sum', id: 'hits', visible: false },
    ]);
    expect(JSON.stringify(cache.widgets[2].properties.metrics)).toContain('dbu-redis-001');
  });

  it('alarms: the spec thresholds, durations and comparisons, notifying the SNS topic', async () => {
    await provision(config(fake.url));
    const alarm = (name: string) => fake.alarms.get(`DatabaseUnit-production-${name}`);
    const actions = { ActionsEnabled: true, AlarmActions: [TOPIC], OKActions: [TOPIC] };
    expect(alarm('database_cpu_high-dbu-primary')).toEqual({
      AlarmName: 'DatabaseUnit-production-database_cpu_high-dbu-primary',
      AlarmDescription: '[high] database_cpu_high: RDS dbu-primary CPU above 70 % for 5 minutes',
      ...actions,
      Namespace: 'AWS/RDS',
      MetricName: 'CPUUtilization',
      Dimensions: [{ Name: 'DBInstanceIdentifier', Value: 'dbu-primary' }],
      Statistic: 'Average',
      Period: 60,
      Unit: 'Percent',
      Threshold: 70,
      EvaluationPeriods: 5,
      DatapointsToAlarm: 5,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(alarm('connection_pool_exhausted-dbu-replica-1')).toMatchObject({
      ...actions,
      MetricName: 'DatabaseConnections',
      Statistic: 'Maximum',
      Threshold: 45,
      EvaluationPeriods: 3,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(alarm('cache_hit_rate_low')).toMatchObject({
      ...actions,
      Threshold: 70,
      EvaluationPeriods: 10,
      ComparisonOperator: 'LessThanThreshold',
      Metrics: [
        { Id: 'rate', Expression: '100 * hits / (hits + misses)', ReturnData: true },
        {
          Id: 'hits',
          ReturnData: false,
          MetricStat: {
            Metric: {
              Namespace: 'DatabaseUnit',
              MetricName: 'CacheHits',
              Dimensions: [
                { Name: 'service', Value: 'database-unit' },
                { Name: 'environment', Value: 'production' },
              ],
            },
            Period: 60,
            Stat: 'Sum',
          },
        },
        { Id: 'misses', MetricStat: { Metric: { MetricName: 'CacheMisses' } } },
      ],
    });
    expect(alarm('vector_search_slow')).toMatchObject({
      ...actions,
      Namespace: 'DatabaseUnit',
      MetricName: 'VectorSearchLatency',
      ExtendedStatistic: 'p95',
      Unit: 'Seconds',
      Threshold: 3,
      EvaluationPeriods: 5,
      ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(fake.alarms.size).toBe(6);
  });

  it('without RDS ids or a topic: the RDS alarms are reported as skipped, the others have no actions', () => {
    const plan = buildProvisionPlan(
      config('http://unused', { rdsInstances: [], alarmTopicArn: undefined }),
    );
    expect(plan.alarms.map((a) => a.AlarmName)).toEqual([
      'DatabaseUnit-production-cache_hit_rate_low',
      'DatabaseUnit-production-vector_search_slow',
    ]);
    expect(
      plan.alarms.every((a) => a.ActionsEnabled === false && a.AlarmActions!.length === 0),
    ).toBe(true);
    expect(plan.skipped).toHaveLength(1);
    expect(plan.skipped[0]).toMatch(/database_cpu_high, connection_pool_exhausted/);
    const overview = JSON.parse(plan.dashboards[0].DashboardBody!) as { widgets: Widget[] };
    expect(overview.widgets[5]).toMatchObject({ type: 'text' });
  });

  it('log metric filters and retention: the spec patterns on our JSON lines, 30 days', async () => {
    await provision(config(fake.url));
    expect(fake.logGroups.get('/database-unit/service')).toEqual({ retentionInDays: 30 });
    const filter = (name: string) =>
      fake.metricFilters.get(`/database-unit/service:DatabaseUnit-production-${name}`);
    expect(filter('slow_queries')).toEqual({
      logGroupName: '/database-unit/service',
      filterName: 'DatabaseUnit-production-slow_queries',
      filterPattern: '{ ($.msg = "slow query") && ($.durationMs > 2000) }',
      metricTransformations: [
        {
          metricName: 'SlowQueryCount',
          metricNamespace: 'DatabaseUnit',
          metricValue: '1',
          defaultValue: 0,
          unit: 'Count',
        },
      ],
    });
    expect(filter('connection_errors')!.metricTransformations).toEqual([
      expect.objectContaining({ metricName: 'ConnectionErrors' }),
    ]);
    expect(filter('cache_misses')!.metricTransformations).toEqual([
      expect.objectContaining({ metricName: 'CacheMissRate' }),
    ]);
  });

  it('the filters match messages the service logs (the ones that exist today)', () => {
    const src = join(import.meta.dirname, '..', '..');
    const code = (readdirSync(src, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts') && !f.includes('cloudwatch'))
      .map((f) => readFileSync(join(src, f), 'utf8'))
      .join('\n');
    const messages = (pattern: string) =>
      [...pattern.matchAll(/\$\.msg = "([^"]+)"/g)].map((m) => m[1]);
    // Not logged yet: the slow-query/connection-failure/cache-miss lines are other work.
    const future = new Set(['connection failed', 'cache miss']);
    for (const spec of Object.values(SPEC_METRIC_FILTERS)) {
      for (const msg of messages(spec.pattern).filter((m) => !future.has(m))) {
        expect({ msg, logged: code.includes(`'${msg}'`) }).toEqual({ msg, logged: true });
      }
    }
    // The slow-query line carries the duration as `durationMs` (the filter's field).
    expect(code).toMatch(/durationMs: time,[\s\S]{0,200}logger\.warn\(slow, 'slow query'\)/);
  });
});
