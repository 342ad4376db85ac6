import type { CloudWatchConfig } from '../../src/config/app-config.js';

/** A publisher's settings for tests against the local CloudWatch endpoint at `url`. */
export function testCloudWatchConfig(
  url: string,
  overrides: Partial<CloudWatchConfig> = {},
): CloudWatchConfig {
  return {
    enabled: true,
    namespace: 'DatabaseUnitTest',
    region: 'us-east-1',
    endpoint: url,
    intervalMs: 3_600_000, // ticks are driven by the tests
    maxBacklog: 20_000,
    maxAttempts: 3,
    environment: 'test',
    logGroup: '/database-unit/test',
    logRetentionDays: 30,
    alarmTopicArn: undefined,
    rdsInstances: [],
    elastiCacheClusters: [],
    ...overrides,
  };
}
