#!/usr/bin/env node
/**
 * The CDK app: one stack per environment of environments.json (`DatabaseUnit-<name>`), on
 * the spec's defaults (lib/config.ts). `cdk synth -c env=production` builds only that one.
 * Offline: no lookups, so `cdk synth` needs no AWS account (docs/aws.md).
 */
import { App } from 'aws-cdk-lib';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { environments } from '../lib/config.js';
import { DatabaseUnitStack } from '../lib/database-unit-stack.js';

const app = new App();
const file = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'environments.json'), 'utf8'),
) as Record<string, unknown>;
const only = app.node.tryGetContext('env') as string | undefined;
const all = environments(file);
if (only !== undefined && !all.some((e) => e.name === only)) {
  throw new Error(
    `-c env=${only}: not in environments.json (${all.map((e) => e.name).join(', ')})`,
  );
}
for (const config of all.filter((e) => only === undefined || e.name === only)) {
  new DatabaseUnitStack(app, `DatabaseUnit-${config.name}`, {
    config,
    env: config.account
      ? { account: config.account, region: config.region }
      : { region: config.region },
    description: `Database Unit (${config.name}): RDS PostgreSQL, ElastiCache, PgBouncer and the service on ECS`,
  });
}
app.synth();
