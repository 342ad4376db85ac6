import {
  type CloudWatchClient,
  PutDashboardCommand,
  PutMetricAlarmCommand,
} from '@aws-sdk/client-cloudwatch';
import {
  type CloudWatchLogsClient,
  CreateLogGroupCommand,
  PutMetricFilterCommand,
  PutRetentionPolicyCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import type { ProvisionPlan } from './cloudwatch-resources.js';

export interface ProvisionOutcome {
  dashboards: string[];
  alarms: string[];
  metricFilters: string[];
  logGroupCreated: boolean;
  retentionInDays: number;
}

/**
 * Applies a plan. Every call is a create-or-replace (PutDashboard, PutMetricAlarm,
 * PutMetricFilter, PutRetentionPolicy); the log group is created unless it exists. Running
 * it again makes the same calls with the same bodies and leaves the same state.
 */
export async function applyProvisionPlan(
  plan: ProvisionPlan,
  cloudwatch: CloudWatchClient,
  logs: CloudWatchLogsClient,
): Promise<ProvisionOutcome> {
  for (const dashboard of plan.dashboards) {
    const out = await cloudwatch.send(new PutDashboardCommand(dashboard));
    const problems = out.DashboardValidationMessages ?? [];
    if (problems.length > 0) {
      throw new Error(
        `dashboard ${dashboard.DashboardName}: ${problems.map((p) => `${p.DataPath}: ${p.Message}`).join('; ')}`,
      );
    }
  }
  for (const alarm of plan.alarms) {
    await cloudwatch.send(new PutMetricAlarmCommand(alarm));
  }
  let logGroupCreated = true;
  try {
    await logs.send(new CreateLogGroupCommand({ logGroupName: plan.logGroup }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceAlreadyExistsException') {
      throw err;
    }
    logGroupCreated = false;
  }
  await logs.send(
    new PutRetentionPolicyCommand({
      logGroupName: plan.logGroup,
      retentionInDays: plan.retentionInDays,
    }),
  );
  for (const filter of plan.metricFilters) {
    await logs.send(new PutMetricFilterCommand(filter));
  }
  return {
    dashboards: plan.dashboards.map((d) => d.DashboardName ?? ''),
    alarms: plan.alarms.map((a) => a.AlarmName ?? ''),
    metricFilters: plan.metricFilters.map((f) => f.filterName ?? ''),
    logGroupCreated,
    retentionInDays: plan.retentionInDays,
  };
}
