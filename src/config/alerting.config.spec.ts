import { DEFAULT_ALERT_RULES, resolveAlertRules } from './alerting.config.js';

describe(resolveAlertRules.name, () => {
  it('defaults to every alert of the spec with its threshold, duration and severity', () => {
    const byName = new Map(DEFAULT_ALERT_RULES.map((r) => [r.name, r]));
    expect([...byName.keys()]).toEqual(
      expect.arrayContaining([
        'database_cpu_high',
        'connection_pool_exhausted',
        'cache_hit_rate_low',
        'vector_search_slow',
        'pool_utilization_high',
        'pool_wait_long',
        'pool_scaling_failed',
        'redis_cpu_high',
        'redis_memory_high',
        'redis_hit_rate_low',
        'backup_failed',
        'backup_duration_long',
        'restoration_test_failed',
        'node_fenced',
        'failover_occurred',
      ]),
    );
    expect(byName.get('database_cpu_high')).toMatchObject({
      threshold: 70,
      forSeconds: 300,
      severity: 'high',
    });
    expect(byName.get('connection_pool_exhausted')).toMatchObject({
      threshold: 45,
      forSeconds: 180,
      severity: 'critical',
    });
    expect(byName.get('cache_hit_rate_low')).toMatchObject({
      comparison: 'LessThanThreshold',
      forSeconds: 600,
      severity: 'medium',
    });
    expect(byName.get('vector_search_slow')).toMatchObject({
      threshold: 3,
      forSeconds: 300,
      severity: 'high',
    });
    expect(byName.get('backup_failed')).toMatchObject({ severity: 'critical' });
    expect(byName.get('backup_duration_long')).toMatchObject({ severity: 'medium' });
    expect(byName.get('restoration_test_failed')).toMatchObject({ severity: 'high' });
    expect(resolveAlertRules(undefined)).toEqual({ rules: DEFAULT_ALERT_RULES, problems: [] });
  });

  it('overrides fields by name, adds rules and removes one', () => {
    const { rules, problems } = resolveAlertRules(
      JSON.stringify({
        database_cpu_high: { threshold: 85 },
        backup_duration_long: { enabled: false },
        lag_high: { metric: 'dbu_db_replication_lag_seconds', threshold: 30, severity: 'high' },
      }),
    );
    expect(problems).toEqual([]);
    const byName = new Map(rules.map((r) => [r.name, r]));
    expect(byName.get('database_cpu_high')).toMatchObject({ threshold: 85, forSeconds: 300 });
    expect(byName.has('backup_duration_long')).toBe(false);
    expect(byName.get('lag_high')).toMatchObject({
      aggregation: 'max',
      comparison: 'GreaterThanThreshold',
      forSeconds: 0,
      labels: {},
    });
  });

  it('names every bad field', () => {
    const { problems } = resolveAlertRules(
      JSON.stringify({
        Bad: {},
        new_rule: { threshold: 'x', severity: 'urgent', comparison: 'Above', colour: 1 },
        vector_search_slow: { forSeconds: -1, labels: { le: 5 } },
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        'ALERTING_RULES.Bad: rule names are lowercase letters, digits and _',
        'ALERTING_RULES.new_rule.colour: unknown field',
        'ALERTING_RULES.new_rule.metric: must be a Prometheus metric name',
        'ALERTING_RULES.new_rule.threshold: must be a number',
        expect.stringMatching(/^ALERTING_RULES\.new_rule\.severity: /),
        expect.stringMatching(/^ALERTING_RULES\.new_rule\.comparison: /),
        'ALERTING_RULES.vector_search_slow.forSeconds: must be a number >= 0',
        expect.stringMatching(/^ALERTING_RULES\.vector_search_slow\.labels: /),
      ]),
    );
    expect(resolveAlertRules('[').problems).toEqual(['ALERTING_RULES: must be a JSON object']);
  });
});
