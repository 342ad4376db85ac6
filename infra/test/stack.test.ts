import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { environments, EnvironmentConfig, SPEC_DEFAULTS } from '../lib/config.js';
import { DatabaseUnitStack, SERVICE_RDS_ACTIONS } from '../lib/database-unit-stack.js';

type Resource = { Type: string; Properties: Record<string, unknown> };

const ACCOUNT = '111122223333';

function synth(
  over: Record<string, unknown> = {},
  name = 'production',
): { stack: DatabaseUnitStack; template: Template; cfg: EnvironmentConfig } {
  const [cfg] = environments({ [name]: { account: ACCOUNT, ...over } });
  const app = new App();
  // a registry image: the tests need no Docker build context
  cfg.service.image = cfg.service.image ?? 'registry.example/database-unit:test';
  const stack = new DatabaseUnitStack(app, `DatabaseUnit-${name}`, {
    config: cfg,
    env: { account: ACCOUNT, region: cfg.region },
  });
  return { stack, template: Template.fromStack(stack), cfg };
}

const { stack, template } = synth();
const resources = template.toJSON().Resources as Record<string, Resource>;
const ofType = (type: string): Array<[string, Resource]> =>
  Object.entries(resources).filter(([, r]) => r.Type === type);
const only = (type: string): Resource => {
  const found = ofType(type);
  expect(found).toHaveLength(1);
  return found[0][1];
};
const logicalIdOf = (prefix: string, type: string): string => {
  const found = ofType(type).filter(([id]) => id.startsWith(prefix));
  expect(found).toHaveLength(1);
  return found[0][0];
};
const ref = (id: string): { Ref: string } => ({ Ref: id });
const arnOf = (id: string): { 'Fn::GetAtt': [string, string] } => ({ 'Fn::GetAtt': [id, 'Arn'] });

const dbInstances = ofType('AWS::RDS::DBInstance');
const primary = dbInstances.find(
  ([, r]) => r.Properties.SourceDBInstanceIdentifier === undefined,
)![1];
const replicas = dbInstances.filter(
  ([, r]) => r.Properties.SourceDBInstanceIdentifier !== undefined,
);
const databaseKey = logicalIdOf('DatabaseKey', 'AWS::KMS::Key');
const cacheKey = logicalIdOf('CacheKey', 'AWS::KMS::Key');
const personalDataKey = logicalIdOf('PersonalDataKey', 'AWS::KMS::Key');
const sg = (prefix: string): string => logicalIdOf(prefix, 'AWS::EC2::SecurityGroup');

describe('the CDK app (infra/): one stack per environment', () => {
  it('synthesises every environment of environments.json, each on the spec defaults', () => {
    const file = JSON.parse(
      readFileSync(join(__dirname, '..', 'environments.json'), 'utf8'),
    ) as Record<string, unknown>;
    const all = environments(file);
    expect(all.map((e) => e.name).sort()).toEqual(['production', 'staging']);
    const app = new App();
    for (const cfg of all) {
      cfg.service.image = 'registry.example/database-unit:test';
      const s = new DatabaseUnitStack(app, `DatabaseUnit-${cfg.name}`, { config: cfg });
      Annotations.fromStack(s).hasNoError('*', Match.anyValue());
    }
    const assembly = app.synth();
    expect(assembly.stacks.map((s) => s.stackName).sort()).toEqual([
      'DatabaseUnit-production',
      'DatabaseUnit-staging',
    ]);
  });

  it('refuses an unknown setting, a bad name and inconsistent replica bounds by path', () => {
    expect(() => environments({ prod: { database: { instanceClas: 'x' } } })).toThrow(
      'prod.database.instanceClas: not a setting',
    );
    expect(() => environments({ Prod: {} })).toThrow('environment name Prod');
    expect(() =>
      environments({ prod: { replicas: { autoscaling: { minReplicas: 3, maxReplicas: 2 } } } }),
    ).toThrow('prod.replicas.autoscaling: minReplicas above maxReplicas');
    expect(() => environments({ prod: { replicas: { count: 3 } } })).toThrow(
      'prod.replicas.count: outside autoscaling.minReplicas..maxReplicas',
    );
  });

  it('takes per-environment overrides over the spec values', () => {
    const { template: t } = synth(
      { database: { instanceClass: 'db.r6g.large', multiAz: true } },
      'big',
    );
    t.hasResourceProperties('AWS::RDS::DBInstance', {
      DBInstanceClass: 'db.r6g.large',
      MultiAZ: true,
      AllocatedStorage: '100',
    });
  });
});

describe('RDS PostgreSQL primary: every value of the spec primary_database block', () => {
  it('has the instance, storage, availability, window and monitoring values', () => {
    const d = SPEC_DEFAULTS.database;
    expect(primary.Properties).toMatchObject({
      DBInstanceIdentifier: 'production-dbu-primary',
      DBInstanceClass: 'db.t3.medium',
      Engine: 'postgres',
      EngineVersion: '15.4',
      StorageType: 'gp2',
      AllocatedStorage: '100',
      MaxAllocatedStorage: 500,
      MultiAZ: false,
      BackupRetentionPeriod: 30,
      PreferredBackupWindow: '03:00-04:00',
      PreferredMaintenanceWindow: 'sun:04:00-sun:05:00',
      StorageEncrypted: true,
      KmsKeyId: arnOf(databaseKey),
      PubliclyAccessible: false,
      EnablePerformanceInsights: true,
      PerformanceInsightsRetentionPeriod: 7,
      PerformanceInsightsKMSKeyId: arnOf(databaseKey),
      MonitoringInterval: 60,
      EnableCloudwatchLogsExports: ['postgresql'],
      DeletionProtection: true,
      CopyTagsToSnapshot: true,
      CACertificateIdentifier: 'rds-ca-rsa2048-g1',
      DBName: 'recipes',
      VPCSecurityGroups: [{ 'Fn::GetAtt': [sg('DatabaseSg'), 'GroupId'] }],
    });
    expect(d.logExports).toEqual(['postgresql']);
    // enhanced monitoring needs its role
    expect(primary.Properties.MonitoringRoleArn).toBeDefined();
  });

  it('has a parameter group forcing TLS, preloading pg_stat_statements, allowing vector, logging slow statements', () => {
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
      Family: 'postgres15',
      Parameters: {
        'rds.force_ssl': '1',
        shared_preload_libraries: 'pg_stat_statements',
        'rds.allowed_extensions': 'vector,pg_stat_statements',
        log_min_duration_statement: '2000',
      },
    });
  });

  it('sits in the private (isolated) subnets through its subnet group', () => {
    const group = only('AWS::RDS::DBSubnetGroup');
    expect(group.Properties.DBSubnetGroupName).toBe('production-dbu-private');
    const isolated = ofType('AWS::EC2::Subnet')
      .filter(([, s]) =>
        (s.Properties.Tags as Array<{ Key: string; Value: string }>).some(
          (t) => t.Key === 'aws-cdk:subnet-type' && t.Value === 'Isolated',
        ),
      )
      .map(([id]) => ref(id));
    expect(isolated).toHaveLength(2);
    expect(group.Properties.SubnetIds).toEqual(isolated);
    template.hasResourceProperties('AWS::ElastiCache::SubnetGroup', { SubnetIds: isolated });
  });

  it('exports the PostgreSQL log to CloudWatch Logs for 30 days', () => {
    template.hasResourceProperties('Custom::LogRetention', {
      LogGroupName: {
        'Fn::Join': [
          '',
          [
            '/aws/rds/instance/',
            ref(dbInstances.find(([, r]) => r === primary)![0]),
            '/postgresql',
          ],
        ],
      },
      RetentionInDays: 30,
    });
  });
});

describe('read replicas: the spec read_replicas block', () => {
  it('creates `count` replicas of the primary with their class, monitoring and encryption', () => {
    expect(replicas).toHaveLength(1);
    const [, replica] = replicas[0];
    expect(replica.Properties).toMatchObject({
      DBInstanceIdentifier: 'production-dbu-replica-1',
      DBInstanceClass: 'db.t3.small',
      MonitoringInterval: 300,
      AutoMinorVersionUpgrade: true,
      KmsKeyId: arnOf(databaseKey),
      PubliclyAccessible: false,
      VPCSecurityGroups: [{ 'Fn::GetAtt': [sg('DatabaseSg'), 'GroupId'] }],
    });
    // CloudFormation refuses StorageEncrypted beside SourceDBInstanceIdentifier
    expect(replica.Properties.StorageEncrypted).toBeUndefined();
    expect(replica.Properties.BackupRetentionPeriod).toBeUndefined();
  });
});

describe('ElastiCache Redis: the spec redis_cache block', () => {
  it('has the node type, engine, policy, snapshots and both encryptions with the cache key and a token', () => {
    const group = only('AWS::ElastiCache::ReplicationGroup');
    expect(group.Properties).toMatchObject({
      ReplicationGroupId: 'production-dbu-cache',
      Engine: 'redis',
      EngineVersion: '7.0',
      CacheNodeType: 'cache.t3.micro',
      NumCacheClusters: 1,
      AtRestEncryptionEnabled: true,
      KmsKeyId: arnOf(cacheKey),
      TransitEncryptionEnabled: true,
      SnapshotRetentionLimit: 1,
      SecurityGroupIds: [{ 'Fn::GetAtt': [sg('CacheSg'), 'GroupId'] }],
    });
    // the token is a Secrets Manager dynamic reference, never a literal
    expect(JSON.stringify(group.Properties.AuthToken)).toContain('{{resolve:secretsmanager:');
    template.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'redis7',
      Properties: { 'maxmemory-policy': 'allkeys-lru' },
    });
  });
});

describe('network: nothing public, only the intended groups reach 5432, 6432 and 6379', () => {
  const ingress = ofType('AWS::EC2::SecurityGroupIngress').map(([, r]) => r.Properties);
  const inline = ofType('AWS::EC2::SecurityGroup').flatMap(([id, r]) =>
    ((r.Properties.SecurityGroupIngress as Array<Record<string, unknown>>) ?? []).map(
      (rule): Record<string, unknown> => ({ ...rule, GroupId: { 'Fn::GetAtt': [id, 'GroupId'] } }),
    ),
  );
  const rules: Array<Record<string, unknown>> = [...ingress, ...inline];
  const sourcesOf = (port: number): string[] =>
    rules
      .filter((r) => (r.FromPort as number) <= port && port <= (r.ToPort as number))
      .map((r) => JSON.stringify(r.SourceSecurityGroupId ?? r.CidrIp ?? r.CidrIpv6));
  const group = (prefix: string): string =>
    JSON.stringify({ 'Fn::GetAtt': [sg(prefix), 'GroupId'] });

  it('5432 only from the service and PgBouncer, into the database group', () => {
    expect(sourcesOf(5432).sort()).toEqual([group('ApplicationSg'), group('PgBouncerSg')].sort());
    for (const r of rules.filter((x) => x.FromPort === 5432)) {
      expect(r.GroupId).toEqual({ 'Fn::GetAtt': [sg('DatabaseSg'), 'GroupId'] });
    }
  });

  it('6432 only from the service into PgBouncer, 6379 only from the service into the cache', () => {
    expect(sourcesOf(6432)).toEqual([group('ApplicationSg')]);
    expect(sourcesOf(6379)).toEqual([group('ApplicationSg')]);
    const cacheRule = rules.find((r) => r.FromPort === 6379)!;
    expect(cacheRule.GroupId).toEqual({ 'Fn::GetAtt': [sg('CacheSg'), 'GroupId'] });
  });

  it('opens no port to 0.0.0.0/0 and no store to any CIDR', () => {
    expect(rules.filter((r) => r.CidrIp === '0.0.0.0/0' || r.CidrIpv6 === '::/0')).toEqual([]);
    for (const port of [5432, 6432, 6379]) {
      expect(sourcesOf(port).every((s) => s.includes('GroupId'))).toBe(true);
    }
  });

  it('keeps the databases, the cache, the ALB and the tasks off the internet', () => {
    for (const [, db] of dbInstances) {
      expect(db.Properties.PubliclyAccessible).toBe(false);
    }
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internal',
    });
    for (const [, service] of ofType('AWS::ECS::Service')) {
      expect(service.Properties).toMatchObject({
        NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
      });
    }
  });
});

describe('encryption: every store with its intended key', () => {
  it('rotates every customer-managed key', () => {
    const keys = ofType('AWS::KMS::Key');
    expect(keys).toHaveLength(3);
    for (const [, key] of keys) {
      expect(key.Properties.EnableKeyRotation).toBe(true);
    }
  });

  it('encrypts the database secrets with the database key and the service secrets with theirs', () => {
    const secrets = ofType('AWS::SecretsManager::Secret').map(([, s]) => s.Properties);
    const keyOf = (name: string): unknown =>
      secrets.find((s) => s.Name === `production-dbu/${name}`)?.KmsKeyId;
    expect(keyOf('db-master')).toEqual(arnOf(databaseKey));
    expect(keyOf('db-app')).toEqual(arnOf(databaseKey));
    expect(keyOf('db-app-owner')).toEqual(arnOf(databaseKey));
    expect(keyOf('redis-auth-token')).toEqual(arnOf(cacheKey));
    expect(keyOf('api-keys')).toEqual(arnOf(personalDataKey));
    expect(keyOf('pii-hash-key')).toEqual(arnOf(personalDataKey));
    expect(secrets.every((s) => s.KmsKeyId !== undefined)).toBe(true);
  });
});

describe('ECS: PgBouncer and the service', () => {
  const taskDefs = ofType('AWS::ECS::TaskDefinition').map(([id, t]): Record<string, unknown> => ({
    id,
    ...t.Properties,
  }));
  const container = (family: string): Record<string, unknown> => {
    const def = taskDefs.find((t) => t.Family === `production-dbu-${family}`)!;
    return (def.ContainerDefinitions as Array<Record<string, unknown>>)[0];
  };
  const env = (c: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      (c.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]),
    );
  const secretNames = (c: Record<string, unknown>): string[] =>
    (c.Secrets as Array<{ Name: string }>).map((s) => s.Name).sort();

  it('PgBouncer gets the spec pool settings, TLS both ways, and its health check', () => {
    const pgb = container('pgbouncer');
    const ini = JSON.stringify(env(pgb).PGBOUNCER_INI);
    for (const line of [
      'default_pool_size = 20',
      'min_pool_size = 5',
      'reserve_pool_size = 5',
      'pool_mode = transaction',
      'client_tls_sslmode = require',
      'server_tls_sslmode = verify-full',
    ]) {
      expect(ini).toContain(line);
    }
    expect(pgb.HealthCheck).toMatchObject({ Interval: 30, Timeout: 10, Retries: 3 });
    expect(secretNames(pgb)).toEqual([
      'APP_DB_PASSWORD',
      'PGBOUNCER_ADMIN_PASSWORD',
      'TLS_CA_BUNDLE',
      'TLS_CERT',
      'TLS_KEY',
    ]);
  });

  it('the service gets its secrets from Secrets Manager only, never as plain environment', () => {
    const svc = container('service');
    expect(secretNames(svc)).toEqual([
      'API_KEYS',
      'BACKUP_RDS_DB_PASSWORD',
      'DB_CA_BUNDLE',
      'DB_PASSWORD',
      'PGBOUNCER_ADMIN_PASSWORD',
      'PII_HASH_KEY',
      'REDIS_PASSWORD',
    ]);
    const plain = env(svc);
    for (const name of Object.keys(plain)) {
      expect(name).not.toMatch(/PASSWORD|SECRET|TOKEN|API_KEYS|HASH_KEY/);
    }
    expect(plain).toMatchObject({
      NODE_ENV: 'production',
      DB_SSL: 'verify-full',
      FAILOVER_MODE: 'off',
      KMS_PROVIDER: 'aws',
      KMS_AWS_KEY_ID: arnOf(personalDataKey),
      BACKUP_PROVIDER: 'rds',
      BACKUP_RDS_INSTANCE_ID: 'production-dbu-primary',
      DB_MIGRATIONS_RUN: 'false',
      CLOUDWATCH_ENABLED: 'true',
    });
    expect(JSON.stringify(plain.REDIS_URL)).toContain('rediss://');
    // spec read_replicas.scaling, for the service's autoscaler
    expect(plain).toMatchObject({
      REPLICA_AUTOSCALING_ENABLED: 'true',
      REPLICA_AUTOSCALING_MIN: '1',
      REPLICA_AUTOSCALING_MAX: '2',
      REPLICA_AUTOSCALING_CPU_PERCENT: '70',
      REPLICA_AUTOSCALING_CONNECTIONS_PERCENT: '80',
      REPLICA_AUTOSCALING_RDS_INSTANCE_ID: 'production-dbu-primary',
      REPLICA_AUTOSCALING_INSTANCE_CLASS: 'db.t3.small',
      REPLICA_AUTOSCALING_ID_PREFIX: 'production-dbu-replica-auto',
    });
  });

  it('container health on /health/live, the ALB target group on /health/ready', () => {
    const svc = container('service');
    expect(JSON.stringify((svc.HealthCheck as { Command: string[] }).Command)).toContain(
      '/health/live',
    );
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      HealthCheckPath: '/health/ready',
      Port: 3000,
      Matcher: { HttpCode: '200' },
    });
  });

  it('logs every container to CloudWatch Logs kept 30 days', () => {
    const groups = ofType('AWS::Logs::LogGroup').map(([, g]) => g.Properties);
    expect(groups.map((g) => g.LogGroupName).sort()).toEqual([
      '/database-unit/production/pgbouncer',
      '/database-unit/production/service',
    ]);
    expect(groups.every((g) => g.RetentionInDays === 30)).toBe(true);
    for (const def of taskDefs) {
      for (const c of def.ContainerDefinitions as Array<Record<string, unknown>>) {
        expect(c.LogConfiguration).toMatchObject({ LogDriver: 'awslogs' });
      }
    }
  });
});

describe("IAM: the service's task has exactly the actions it uses, on this environment's resources", () => {
  const serviceTask = ofType('AWS::ECS::TaskDefinition').find(
    ([, t]) => t.Properties.Family === 'production-dbu-service',
  )![1];
  const roleId = (serviceTask.Properties.TaskRoleArn as { 'Fn::GetAtt': [string, string] })[
    'Fn::GetAtt'
  ][0];
  const statements = ofType('AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([ref(roleId)]))
    .flatMap(
      ([, p]) =>
        (p.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement,
    );
  const actionsOf = (s: Record<string, unknown>): string[] =>
    (Array.isArray(s.Action) ? s.Action : [s.Action]) as string[];

  it('grants exactly the KMS, CloudWatch and RDS actions of src/', () => {
    const all = statements.flatMap(actionsOf).sort();
    expect(all).toEqual(
      [
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'cloudwatch:PutMetricData',
        'cloudwatch:GetMetricData',
        ...SERVICE_RDS_ACTIONS,
      ].sort(),
    );
    expect(statements.every((s) => s.Effect === 'Allow')).toBe(true);
  });

  it('KMS only on the personal-data key, metrics only in its namespace', () => {
    const kms = statements.find((s) => actionsOf(s).includes('kms:Decrypt'))!;
    expect(kms.Resource).toEqual(arnOf(personalDataKey));
    const put = statements.find((s) => actionsOf(s).includes('cloudwatch:PutMetricData'))!;
    expect(put.Condition).toEqual({ StringEquals: { 'cloudwatch:namespace': 'DatabaseUnit' } });
  });

  it("RDS actions only on this environment's instances, snapshots, subnet and parameter groups", () => {
    const rdsStatement = statements.find((s) => actionsOf(s).includes('rds:CreateDBSnapshot'))!;
    const resources = (rdsStatement.Resource as unknown[]).map((r) =>
      JSON.stringify(r).replace(/.*:rds:[^"]*?"|\\"/g, ''),
    );
    const text = JSON.stringify(rdsStatement.Resource);
    for (const r of [
      ':db:production-dbu-*',
      ':snapshot:production-dbu-*',
      ':db:recipes-restore-*',
      ':db:recipes-validation-*',
      ':subgrp:production-dbu-private',
      ':pg:production-dbu-postgres15',
    ]) {
      expect(text).toContain(r);
    }
    expect(text).not.toMatch(/:db:\*|"\*"/);
    expect(resources.length).toBe(8);
  });

  it('without autoscaling, no CreateDBInstanceReadReplica and no GetMetricData', () => {
    const { template: t } = synth({ replicas: { autoscaling: { enabled: false } } }, 'fixed');
    const text = JSON.stringify(t.findResources('AWS::IAM::Policy'));
    expect(text).toContain('rds:CreateDBSnapshot');
    expect(text).toContain('rds:DeleteDBInstance');
    expect(text).not.toContain('rds:CreateDBInstanceReadReplica');
    expect(text).not.toContain('cloudwatch:GetMetricData');
  });
});

describe('alarms: SNS topics per severity, e-mail on critical and high', () => {
  it('creates one topic per severity and subscribes the spec address to critical and high', () => {
    const topics = ofType('AWS::SNS::Topic').map(([id, t]) => ({
      id,
      name: t.Properties.TopicName,
    }));
    expect(topics.map((t) => t.name).sort()).toEqual([
      'production-dbu-alarms-critical',
      'production-dbu-alarms-high',
      'production-dbu-alarms-medium',
    ]);
    const subs = ofType('AWS::SNS::Subscription').map(([, s]) => s.Properties);
    const subscribed = (name: string): boolean =>
      subs.some(
        (s) =>
          JSON.stringify(s.TopicArn) ===
            JSON.stringify(ref(topics.find((t) => t.name === name)!.id)) &&
          s.Protocol === 'email' &&
          s.Endpoint === 'admin@recipeapp.com',
      );
    expect(subscribed('production-dbu-alarms-critical')).toBe(true);
    expect(subscribed('production-dbu-alarms-high')).toBe(true);
    expect(subscribed('production-dbu-alarms-medium')).toBe(false);
    expect(stack.prefix).toBe('production-dbu');
  });
});
