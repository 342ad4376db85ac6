/**
 * Alert rules: the spec's alerting_system.alert_rules, the PgBouncer, Redis and backup
 * monitoring alerts, plus a fenced node and a failover. Each reads one metric of the
 * service's prom-client registry. ALERTING_RULES (JSON) overrides fields of these by
 * name, adds new rules, or turns one off with `"enabled": false`.
 */
export const ALERT_SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/** CloudWatch's names, as the spec writes them. */
export const ALERT_COMPARISONS = [
  'GreaterThanThreshold',
  'GreaterThanOrEqualToThreshold',
  'LessThanThreshold',
  'LessThanOrEqualToThreshold',
] as const;
export type AlertComparison = (typeof ALERT_COMPARISONS)[number];

/**
 * How the matching series of the metric become one value:
 * max/min/sum/avg of the current values; `increase` (counters: growth since the previous
 * evaluation), `rate` (that growth per second); `p95` (histograms: 95th percentile of the
 * observations since the previous evaluation). The last three have no value on an
 * instance's first evaluation (a new leader), nor p95 without observations in between.
 */
export const ALERT_AGGREGATIONS = ['max', 'min', 'sum', 'avg', 'increase', 'rate', 'p95'] as const;
export type AlertAggregation = (typeof ALERT_AGGREGATIONS)[number];

export interface AlertRule {
  name: string;
  metric: string;
  /** Series filter: label → value, or any of several values. */
  labels: Record<string, string | string[]>;
  aggregation: AlertAggregation;
  comparison: AlertComparison;
  threshold: number;
  /** How long the condition must hold before the alert fires ("for"); 0: at once. */
  forSeconds: number;
  severity: AlertSeverity;
  summary: string;
}

type RuleDefaults = Omit<AlertRule, 'name' | 'labels' | 'aggregation' | 'comparison'> &
  Partial<Pick<AlertRule, 'labels' | 'aggregation' | 'comparison'>>;

const SPEC_RULES: Record<string, RuleDefaults> = {
  // alerting_system.alert_rules
  database_cpu_high: {
    // Beside a self-managed cluster: the sampler's estimate from sessions on a CPU (needs
    // MONITORING_DB_VCPUS); on AWS the CloudWatch alarm of the same name reads RDS CPUUtilization.
    metric: 'dbu_db_cpu_utilization_percent',
    threshold: 70,
    forSeconds: 300,
    severity: 'high',
    summary: 'Database CPU above 70 %',
  },
  connection_pool_exhausted: {
    metric: 'dbu_db_connections',
    labels: { role: 'primary' },
    aggregation: 'sum',
    threshold: 45,
    forSeconds: 180,
    severity: 'critical',
    summary: 'Connections to the primary above 45 (90 % of 50)',
  },
  cache_hit_rate_low: {
    metric: 'dbu_db_cache_hit_ratio',
    labels: { role: 'primary' },
    aggregation: 'min',
    comparison: 'LessThanThreshold',
    threshold: 0.7,
    forSeconds: 600,
    severity: 'medium',
    summary: 'PostgreSQL buffer cache hit ratio below 70 %',
  },
  vector_search_slow: {
    metric: 'vector_search_duration_seconds',
    aggregation: 'p95',
    threshold: 3,
    forSeconds: 300,
    severity: 'high',
    summary: 'Vector search p95 latency above 3 s',
  },
  // connection_pooling.monitoring.alerts
  pool_utilization_high: {
    metric: 'dbu_pool_utilization',
    threshold: 0.8,
    forSeconds: 60,
    severity: 'high',
    summary: 'A connection pool is more than 80 % busy',
  },
  pool_wait_long: {
    metric: 'dbu_pool_wait_seconds',
    threshold: 0.1,
    forSeconds: 60,
    severity: 'medium',
    summary: 'Connection waits above 100 ms',
  },
  pool_scaling_failed: {
    metric: 'dbu_pool_scaling_failures_total',
    aggregation: 'increase',
    threshold: 0,
    forSeconds: 0,
    severity: 'medium',
    summary: 'A pool resize failed',
  },
  // caching_layer.monitoring.alerts (Redis)
  redis_cpu_high: {
    metric: 'dbu_redis_cpu_seconds_total',
    aggregation: 'rate',
    threshold: 0.8,
    forSeconds: 300,
    severity: 'high',
    summary: 'Redis CPU above 80 % of one core',
  },
  redis_memory_high: {
    metric: 'dbu_redis_memory_utilization',
    threshold: 0.85,
    forSeconds: 300,
    severity: 'high',
    summary: 'Redis memory above 85 % of maxmemory',
  },
  redis_hit_rate_low: {
    metric: 'dbu_redis_hit_ratio',
    aggregation: 'min',
    comparison: 'LessThanThreshold',
    threshold: 0.7,
    forSeconds: 600,
    severity: 'medium',
    summary: 'Redis keyspace hit ratio below 70 %',
  },
  // backup_monitoring.alerts (the backup module's alert gauges)
  backup_failed: {
    metric: 'dbu_backup_alert',
    labels: { alert: 'backup_failed' },
    threshold: 0,
    forSeconds: 0,
    severity: 'critical',
    summary: 'The last backup failed',
  },
  backup_duration_long: {
    metric: 'dbu_backup_alert',
    labels: { alert: 'backup_duration_long' },
    threshold: 0,
    forSeconds: 0,
    severity: 'medium',
    summary: 'A backup ran longer than BACKUP_DURATION_ALERT_MINUTES (120)',
  },
  restoration_test_failed: {
    metric: 'dbu_backup_alert',
    labels: { alert: 'restoration_test_failed' },
    threshold: 0,
    forSeconds: 0,
    severity: 'high',
    summary: 'The last restore validation failed',
  },
  // topology
  node_fenced: {
    metric: 'dbu_fenced_nodes',
    threshold: 0,
    forSeconds: 0,
    severity: 'critical',
    summary: 'A former primary runs on an older timeline (fenced): rejoin it as a replica',
  },
  failover_occurred: {
    metric: 'dbu_failovers_total',
    labels: { outcome: ['promoted', 'followed'] },
    aggregation: 'increase',
    threshold: 0,
    forSeconds: 0,
    severity: 'high',
    summary: 'A replica was promoted: the writer changed',
  },
};

export const DEFAULT_ALERT_RULES: readonly AlertRule[] = Object.entries(SPEC_RULES).map(
  ([name, r]) => ({
    name,
    labels: {},
    aggregation: 'max',
    comparison: 'GreaterThanThreshold',
    ...r,
  }),
);

const NAME = /^[a-z][a-z0-9_]{0,62}$/;
const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * The defaults with ALERTING_RULES applied: `{ "<name>": { field: value, ... } }`.
 * Returns the rules and every problem found (`ALERTING_RULES.<name>.<field>: ...`).
 */
export function resolveAlertRules(json: string | undefined): {
  rules: AlertRule[];
  problems: string[];
} {
  const rules = new Map(DEFAULT_ALERT_RULES.map((r) => [r.name, { ...r }]));
  const problems: string[] = [];
  if (!json) {
    return { rules: [...rules.values()], problems };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { rules: [], problems: ['ALERTING_RULES: must be a JSON object'] };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { rules: [], problems: ['ALERTING_RULES: must be a JSON object of rules by name'] };
  }
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    const at = `ALERTING_RULES.${name}`;
    if (!NAME.test(name)) {
      problems.push(`${at}: rule names are lowercase letters, digits and _`);
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push(`${at}: must be an object`);
      continue;
    }
    const o = raw as Record<string, unknown>;
    if (o.enabled === false) {
      rules.delete(name);
      continue;
    }
    const base: Partial<AlertRule> = rules.get(name) ?? {
      name,
      labels: {},
      aggregation: 'max',
      comparison: 'GreaterThanThreshold',
      forSeconds: 0,
      summary: name,
    };
    const rule = { ...base, ...pick(o) } as Partial<AlertRule>;
    const bad = ruleProblems(rule, o);
    problems.push(...bad.map((p) => `${at}.${p}`));
    if (bad.length === 0) {
      rules.set(name, rule as AlertRule);
    }
  }
  return { rules: [...rules.values()], problems };
}

const FIELDS = [
  'metric',
  'labels',
  'aggregation',
  'comparison',
  'threshold',
  'forSeconds',
  'severity',
  'summary',
] as const;

function pick(o: Record<string, unknown>): Partial<AlertRule> {
  const out: Record<string, unknown> = {};
  for (const f of FIELDS) {
    if (f in o) {
      out[f] = o[f];
    }
  }
  return out;
}

function ruleProblems(r: Partial<AlertRule>, given: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(given)) {
    if (key !== 'enabled' && !(FIELDS as readonly string[]).includes(key)) {
      problems.push(`${key}: unknown field`);
    }
  }
  if (typeof r.metric !== 'string' || !METRIC.test(r.metric)) {
    problems.push('metric: must be a Prometheus metric name');
  }
  if (
    typeof r.labels !== 'object' ||
    r.labels === null ||
    Array.isArray(r.labels) ||
    !Object.entries(r.labels).every(
      ([k, v]) =>
        LABEL.test(k) &&
        (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))),
    )
  ) {
    problems.push('labels: must map label names to a string or an array of strings');
  }
  if (!(ALERT_AGGREGATIONS as readonly unknown[]).includes(r.aggregation)) {
    problems.push(`aggregation: must be one of ${ALERT_AGGREGATIONS.join(', ')}`);
  }
  if (!(ALERT_COMPARISONS as readonly unknown[]).includes(r.comparison)) {
    problems.push(`comparison: must be one of ${ALERT_COMPARISONS.join(', ')}`);
  }
  if (typeof r.threshold !== 'number' || !Number.isFinite(r.threshold)) {
    problems.push('threshold: must be a number');
  }
  if (typeof r.forSeconds !== 'number' || !(r.forSeconds >= 0)) {
    problems.push('forSeconds: must be a number >= 0');
  }
  if (!(ALERT_SEVERITIES as readonly unknown[]).includes(r.severity)) {
    problems.push(`severity: must be one of ${ALERT_SEVERITIES.join(', ')}`);
  }
  if (typeof r.summary !== 'string' || r.summary.length === 0 || r.summary.length > 300) {
    problems.push('summary: must be a string of 1-300 characters');
  }
  return problems;
}
