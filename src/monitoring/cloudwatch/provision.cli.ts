import { Logger } from '@nestjs/common';
import { createPino, PinoLoggerService } from '../../common/logger.js';
import { ConfigValidationError, loadConfig } from '../../config/app-config.js';
import { createCloudWatchClient, createCloudWatchLogsClient } from './cloudwatch-clients.js';
import { buildProvisionPlan } from './cloudwatch-resources.js';
import { applyProvisionPlan } from './provision.js';

/**
 * `npm run cloudwatch:provision [-- --dry-run]`: creates or updates the spec's dashboards,
 * alarms, log metric filters and log retention (idempotent). `--dry-run` prints the
 * request bodies and calls nothing.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  Logger.overrideLogger(new PinoLoggerService(createPino(config.logLevel)));
  const logger = new Logger('cloudwatch:provision');
  const plan = buildProvisionPlan(config.cloudwatch);
  if (process.argv.includes('--dry-run')) {
    // stdout holds only the plan (its `skipped` says what is left out), to be piped to jq.
    // Dashboard bodies are JSON strings on the wire; printed parsed, to be read.
    const readable = {
      ...plan,
      dashboards: plan.dashboards.map((d) => ({
        ...d,
        DashboardBody: JSON.parse(d.DashboardBody ?? '{}') as unknown,
      })),
    };
    process.stdout.write(`${JSON.stringify(readable, null, 2)}\n`);
    return;
  }
  for (const reason of plan.skipped) {
    logger.warn({ reason }, 'not provisioned');
  }
  const cloudwatch = createCloudWatchClient(config.cloudwatch);
  const logs = createCloudWatchLogsClient(config.cloudwatch);
  try {
    const outcome = await applyProvisionPlan(plan, cloudwatch, logs);
    logger.log(outcome, 'cloudwatch provisioned');
  } finally {
    cloudwatch.destroy();
    logs.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof ConfigValidationError ? err.message : err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
