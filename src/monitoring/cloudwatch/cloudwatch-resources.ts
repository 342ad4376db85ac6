import type { PutDashboardInput, PutMetricAlarmInput } from '@aws-sdk/client-cloudwatch';
import type { PutMetricFilterRequest } from '@aws-sdk/client-cloudwatch-logs';
import type { CloudWatchConfig } from '../../config/app-config.js';
import { CloudWatchDimension } from './metric-datum.js';

/**
 * What `npm run cloudwatch:provision` puts in place, built from config only (no AWS call):
 * the spec's three dashboards, its four alarms, its three log metric filters and the log
 * retention. Deterministic: the same config gives byte-identical bodies, so provisioning
 * twice makes the same calls.
 */
export interface ProvisionPlan {
  dashboards: PutDashboardInput[];
  alarms: PutMetricAlarmInput[];
  logGroup: string;
  retentionInDays: number;
  metricFilters: PutMetricFilterRequest[];
  /** Spec items not provisioned with this config, and why. */
  skipped: string[];
}

/** Spec dashboards: widgets and refresh intervals (monitoring_stack.cloudwatch_configuration). */
export const SPEC_DASHBOARDS = {
  database_overview: {
    refreshSeconds: 30,
    widgets: [
      'cpu_utilization',
      'memory_utilization',
      'database_connections',
      'read_write_latency',
      'iops_utilization',
    ],
  },
  cache_performance: {
    refreshSeconds: 60,
    widgets: ['cache_hit_rate', 'cache_memory_usage', 'eviction_rate', 'operation_latency'],
  },
  vector_search_analytics: {
    refreshSeconds: 120,
    widgets: [
      'search_latency_distribution',
      'search_accuracy_metrics',
      'index_performance',
      'query_throughput',
    ],
  },
} as const;

export type DashboardName = keyof typeof SPEC_DASHBOARDS;

/** Spec alert_rules (alerting_system) that CloudWatch alarms implement. */
export const SPEC_ALARMS = {
  database_cpu_high: { threshold: 70, durationSeconds: 300, severity: 'high' },
  connection_pool_exhausted: { threshold: 45, durationSeconds: 180, severity: 'critical' },
  cache_hit_rate_low: { threshold: 70, durationSeconds: 600, severity: 'medium' },
  /** Spec: 3000 ms; the latency is published in seconds. */
  vector_search_slow: { threshold: 3, durationSeconds: 300, severity: 'high' },
} as const;

/** Spec metric_filters, on the service's pino JSON lines (message key `msg`). */
export const SPEC_METRIC_FILTERS = {
  slow_queries: {
    metricName: 'SlowQueryCount',
    // The service's slow-query line (src/database/typeorm-logger.ts) carries `durationMs`.
    pattern: '{ ($.msg = "slow query") && ($.durationMs > 2000) }',
  },
  connection_errors: {
    metricName: 'ConnectionErrors',
    pattern:
      '{ ($.msg = "connection failed") || ($.msg = "pooled connection lost") || ($.msg = "the writer is unreachable") || ($.msg = "redis error") }',
  },
  cache_misses: {
    metricName: 'CacheMissRate',
    pattern: '{ $.msg = "cache miss" }',
  },
} as const;

const PERIOD = 60;
const WIDTH = 12;
const HEIGHT = 6;

type MetricRow = Array<string | Record<string, unknown>>;

interface Ctx {
  config: CloudWatchConfig;
  ns: string;
  env: string;
  period: number;
}

/** Per-instance series of the publisher: environment, instance, service and the labels. */
function search(
  ctx: Ctx,
  metric: string,
  labels: string[],
  stat: string,
  label: string,
): MetricRow[] {
  const dims = [
    CloudWatchDimension.Environment,
    CloudWatchDimension.Instance,
    CloudWatchDimension.Service,
    ...labels,
  ].sort();
  const schema = `{${quote(ctx.ns)},${dims.join(',')}}`;
  const expression = `SEARCH('${schema} MetricName="${metric}" environment="${ctx.env}"', '${stat}', ${ctx.period})`;
  return [[{ expression, label, id: `e${hash(metric + stat + label)}` }]];
}

/** Fleet-wide rollups (service, environment). */
function fleet(ctx: Ctx, metric: string, options: Record<string, unknown>): MetricRow {
  return [
    ctx.ns,
    metric,
    CloudWatchDimension.Service,
    'database-unit',
    CloudWatchDimension.Environment,
    ctx.env,
    options,
  ];
}

function rds(ctx: Ctx, metric: string, stat: string): MetricRow[] {
  return ctx.config.rdsInstances.map((id) => [
    'AWS/RDS',
    metric,
    'DBInstanceIdentifier',
    id,
    { stat, label: `${id} ${metric}` },
  ]);
}

function elastiCache(ctx: Ctx, metric: string, stat: string): MetricRow[] {
  return ctx.config.elastiCacheClusters.map((id) => [
    'AWS/ElastiCache',
    metric,
    'CacheClusterId',
    id,
    { stat, label: `${id} ${metric}` },
  ]);
}

function quote(name: string): string {
  return /^[\w]+$/.test(name) ? name : `"${name}"`;
}

/** Short stable id for expression rows (ids must start lower-case and be unique per widget). */
function hash(text: string): string {
  let h = 0;
  for (const ch of text) {
    h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  }
  return h.toString(36);
}

function widget(
  ctx: Ctx,
  key: string,
  title: string,
  metrics: MetricRow[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: 'metric',
    properties: {
      title: `${key}: ${title}`,
      region: ctx.config.region,
      view: 'timeSeries',
      stacked: false,
      period: ctx.period,
      metrics,
      ...extra,
    },
  };
}

function widgets(ctx: Ctx, name: DashboardName): Array<Record<string, unknown>> {
  const noRds = ctx.config.rdsInstances.length === 0;
  switch (name) {
    case 'database_overview':
      return [
        widget(ctx, 'cpu_utilization', 'database CPU (RDS) and service CPU seconds', [
          ...rds(ctx, 'CPUUtilization', 'Average'),
          ...search(ctx, 'process_cpu_seconds_total', [], 'Sum', 'service CPU s'),
        ]),
        widget(ctx, 'memory_utilization', 'database freeable memory (RDS), service RSS', [
          ...rds(ctx, 'FreeableMemory', 'Minimum'),
          ...search(ctx, 'process_resident_memory_bytes', [], 'Maximum', 'service RSS'),
        ]),
        widget(ctx, 'database_connections', 'connections (RDS) and pool sizes', [
          ...rds(ctx, 'DatabaseConnections', 'Maximum'),
          ...search(ctx, 'dbu_pool_size', ['pool'], 'Maximum', 'pool size'),
          ...search(ctx, 'dbu_pool_waiting', ['pool'], 'Maximum', 'waiting'),
        ]),
        widget(ctx, 'read_write_latency', 'read/write latency (RDS), pool acquire p95', [
          ...rds(ctx, 'ReadLatency', 'Average'),
          ...rds(ctx, 'WriteLatency', 'Average'),
          ...search(ctx, 'dbu_pool_acquire_seconds', ['pool'], 'p95', 'acquire p95'),
        ]),
        noRds
          ? {
              type: 'text',
              properties: {
                markdown:
                  '### iops_utilization\nNo RDS instance configured (CLOUDWATCH_RDS_INSTANCES): a self-managed cluster reports no IOPS to CloudWatch.',
              },
            }
          : widget(ctx, 'iops_utilization', 'read/write IOPS (RDS)', [
              ...rds(ctx, 'ReadIOPS', 'Average'),
              ...rds(ctx, 'WriteIOPS', 'Average'),
            ]),
      ];
    case 'cache_performance':
      return [
        widget(
          ctx,
          'cache_hit_rate',
          'hit rate % (all tiers, fleet)',
          [
            [{ expression: '100 * hits / (hits + misses)', label: 'hit rate %', id: 'rate' }],
            fleet(ctx, 'CacheHits', { stat: 'Sum', id: 'hits', visible: false }),
            fleet(ctx, 'CacheMisses', { stat: 'Sum', id: 'misses', visible: false }),
          ],
          {
            yAxis: { left: { min: 0, max: 100 } },
            annotations: {
              horizontal: [{ label: 'alarm', value: SPEC_ALARMS.cache_hit_rate_low.threshold }],
            },
          },
        ),
        widget(ctx, 'cache_memory_usage', 'L1 bytes per instance, Redis memory (ElastiCache)', [
          ...search(ctx, 'cache_l1_bytes', [], 'Maximum', 'L1 bytes'),
          ...elastiCache(ctx, 'DatabaseMemoryUsagePercentage', 'Maximum'),
        ]),
        widget(ctx, 'eviction_rate', 'evictions per period', [
          ...search(ctx, 'cache_l1_evictions_total', [], 'Sum', 'L1 evictions'),
          ...elastiCache(ctx, 'Evictions', 'Sum'),
        ]),
        widget(ctx, 'operation_latency', 'operation latency p95 by tier and op', [
          ...search(ctx, 'cache_operation_duration_seconds', ['op', 'tier'], 'p95', 'p95'),
        ]),
      ];
    case 'vector_search_analytics':
      return [
        widget(
          ctx,
          'search_latency_distribution',
          'search latency percentiles (fleet, s)',
          ['p50', 'p90', 'p95', 'p99'].map((stat) =>
            fleet(ctx, 'VectorSearchLatency', { stat, label: stat }),
          ),
          {
            annotations: {
              horizontal: [
                { label: 'vector_search_slow', value: SPEC_ALARMS.vector_search_slow.threshold },
              ],
            },
          },
        ),
        widget(ctx, 'search_accuracy_metrics', 'sampled recall and exact fallbacks', [
          ...search(ctx, 'vector_search_recall', ['filtered', 'plan'], 'Average', 'recall'),
          ...search(
            ctx,
            'vector_search_exact_fallbacks_total',
            ['filtered'],
            'Sum',
            'exact fallbacks',
          ),
        ]),
        widget(ctx, 'index_performance', 'HNSW index size and last build time', [
          ...search(ctx, 'vector_index_size_bytes', [], 'Maximum', 'index bytes'),
          ...search(ctx, 'vector_index_last_build_seconds', [], 'Maximum', 'build s'),
        ]),
        widget(ctx, 'query_throughput', 'searches per period (fleet)', [
          fleet(ctx, 'VectorSearchLatency', { stat: 'SampleCount', label: 'searches' }),
        ]),
      ];
  }
}

function dashboard(ctx: Ctx, name: DashboardName): PutDashboardInput {
  const spec = SPEC_DASHBOARDS[name];
  // Periods of standard-resolution metrics are multiples of 60 s.
  const period = Math.max(PERIOD, Math.ceil(spec.refreshSeconds / PERIOD) * PERIOD);
  const dctx = { ...ctx, period };
  const header = {
    type: 'text',
    properties: {
      markdown:
        `## ${name} (${ctx.env})\n` +
        `Spec refresh interval: ${spec.refreshSeconds} s. A dashboard body has no refresh ` +
        `setting (auto-refresh is chosen per viewer in the console); graphs use a ${period} s period.`,
    },
  };
  const placed = [header, ...widgets(dctx, name)].map((w, i) => ({
    ...w,
    x: i === 0 ? 0 : ((i - 1) % 2) * WIDTH,
    y: i === 0 ? 0 : 2 + Math.floor((i - 1) / 2) * HEIGHT,
    width: i === 0 ? 2 * WIDTH : WIDTH,
    height: i === 0 ? 2 : HEIGHT,
  }));
  return {
    DashboardName: `${resourcePrefix(ctx)}-${name}`,
    DashboardBody: JSON.stringify({ start: '-PT3H', periodOverride: 'inherit', widgets: placed }),
  };
}

/** Dashboard and alarm names: namespace and environment, in the characters dashboards allow. */
export function resourcePrefix(ctx: { ns: string; env: string }): string {
  return `${ctx.ns}-${ctx.env}`.replace(/[^\w-]/g, '_');
}

function alarmBase(
  ctx: Ctx,
  key: keyof typeof SPEC_ALARMS,
  suffix: string | null,
  description: string,
): Pick<
  PutMetricAlarmInput,
  | 'AlarmName'
  | 'AlarmDescription'
  | 'ActionsEnabled'
  | 'AlarmActions'
  | 'OKActions'
  | 'Threshold'
  | 'EvaluationPeriods'
  | 'DatapointsToAlarm'
  | 'ComparisonOperator'
  | 'TreatMissingData'
> {
  const spec = SPEC_ALARMS[key];
  const periods = spec.durationSeconds / PERIOD;
  const actions = ctx.config.alarmTopicArn ? [ctx.config.alarmTopicArn] : [];
  return {
    AlarmName: `${resourcePrefix(ctx)}-${key}${suffix ? `-${suffix}` : ''}`,
    AlarmDescription: `[${spec.severity}] ${key}: ${description}`,
    ActionsEnabled: actions.length > 0,
    AlarmActions: actions,
    OKActions: actions,
    Threshold: spec.threshold,
    EvaluationPeriods: periods,
    DatapointsToAlarm: periods,
    ComparisonOperator: 'GreaterThanThreshold',
    TreatMissingData: 'notBreaching',
  };
}

function alarms(ctx: Ctx, skipped: string[]): PutMetricAlarmInput[] {
  const out: PutMetricAlarmInput[] = [];
  if (ctx.config.rdsInstances.length === 0) {
    skipped.push(
      'alarms database_cpu_high, connection_pool_exhausted: need CLOUDWATCH_RDS_INSTANCES (AWS/RDS CPUUtilization, DatabaseConnections)',
    );
  }
  for (const id of ctx.config.rdsInstances) {
    out.push({
      ...alarmBase(ctx, 'database_cpu_high', id, `RDS ${id} CPU above 70 % for 5 minutes`),
      Namespace: 'AWS/RDS',
      MetricName: 'CPUUtilization',
      Dimensions: [{ Name: 'DBInstanceIdentifier', Value: id }],
      Statistic: 'Average',
      Period: PERIOD,
      Unit: 'Percent',
    });
    out.push({
      ...alarmBase(
        ctx,
        'connection_pool_exhausted',
        id,
        `RDS ${id} above 45 connections (90 % of 50) for 3 minutes`,
      ),
      Namespace: 'AWS/RDS',
      MetricName: 'DatabaseConnections',
      Dimensions: [{ Name: 'DBInstanceIdentifier', Value: id }],
      Statistic: 'Maximum',
      Period: PERIOD,
      Unit: 'Count',
    });
  }
  const fleetDims = [
    { Name: CloudWatchDimension.Service, Value: 'database-unit' },
    { Name: CloudWatchDimension.Environment, Value: ctx.env },
  ];
  const stat = (id: string, metric: string) => ({
    Id: id,
    ReturnData: false,
    MetricStat: {
      Metric: { Namespace: ctx.ns, MetricName: metric, Dimensions: fleetDims },
      Period: PERIOD,
      Stat: 'Sum',
      Unit: 'Count' as const,
    },
  });
  out.push({
    ...alarmBase(
      ctx,
      'cache_hit_rate_low',
      null,
      'cache hit rate (all tiers, fleet) below 70 % for 10 minutes',
    ),
    ComparisonOperator: 'LessThanThreshold',
    Metrics: [
      {
        Id: 'rate',
        Expression: '100 * hits / (hits + misses)',
        Label: 'CacheHitRate',
        ReturnData: true,
      },
      stat('hits', 'CacheHits'),
      stat('misses', 'CacheMisses'),
    ],
  });
  out.push({
    ...alarmBase(
      ctx,
      'vector_search_slow',
      null,
      'vector search p95 above 3 s (spec 3000 ms) for 5 minutes',
    ),
    Namespace: ctx.ns,
    MetricName: 'VectorSearchLatency',
    Dimensions: fleetDims,
    ExtendedStatistic: 'p95',
    Period: PERIOD,
    Unit: 'Seconds',
  });
  return out;
}

function metricFilters(ctx: Ctx): PutMetricFilterRequest[] {
  return Object.entries(SPEC_METRIC_FILTERS).map(([name, spec]) => ({
    logGroupName: ctx.config.logGroup,
    filterName: `${resourcePrefix(ctx)}-${name}`,
    filterPattern: spec.pattern,
    metricTransformations: [
      {
        metricName: spec.metricName,
        metricNamespace: ctx.ns,
        metricValue: '1',
        defaultValue: 0,
        unit: 'Count',
      },
    ],
  }));
}

export function buildProvisionPlan(config: CloudWatchConfig): ProvisionPlan {
  const ctx: Ctx = { config, ns: config.namespace, env: config.environment, period: PERIOD };
  const skipped: string[] = [];
  return {
    dashboards: (Object.keys(SPEC_DASHBOARDS) as DashboardName[]).map((name) =>
      dashboard(ctx, name),
    ),
    alarms: alarms(ctx, skipped),
    logGroup: config.logGroup,
    retentionInDays: config.logRetentionDays,
    metricFilters: metricFilters(ctx),
    skipped,
  };
}
