import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { join } from 'node:path';
import type { EnvironmentConfig } from './config.js';
import { PGBOUNCER_START, SERVICE_START, pgbouncerIni } from './pgbouncer.js';

export interface DatabaseUnitStackProps extends StackProps {
  config: EnvironmentConfig;
  /** The repository's root (the service's Dockerfile), when no registry image is configured. */
  serviceSource?: string;
}

/** The RDS actions of the backup provider (src/backup/rds.provider.ts) and the replica autoscaler. */
export const SERVICE_RDS_ACTIONS = [
  'rds:AddTagsToResource',
  'rds:CreateDBInstanceReadReplica',
  'rds:CreateDBSnapshot',
  'rds:DeleteDBInstance',
  'rds:DeleteDBSnapshot',
  'rds:DescribeDBInstanceAutomatedBackups',
  'rds:DescribeDBInstances',
  'rds:DescribeDBSnapshots',
  'rds:RestoreDBInstanceFromDBSnapshot',
  'rds:RestoreDBInstanceToPointInTime',
];

const DATA_SUBNETS: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
const APP_SUBNETS: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };

/**
 * One environment of the Database Unit (docs/aws.md): a VPC whose isolated subnets hold RDS
 * PostgreSQL (primary and read replicas) and ElastiCache Redis, reachable only from the
 * service's and PgBouncer's security groups; PgBouncer and the service on ECS Fargate behind
 * an internal ALB; customer-managed KMS keys (rotated yearly) for the database, the cache and
 * the service's personal-data envelope keys; SNS topics for the alarms.
 */
export class DatabaseUnitStack extends Stack {
  readonly prefix: string;

  constructor(scope: Construct, id: string, props: DatabaseUnitStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    const prefix = `${cfg.name}-dbu`;
    this.prefix = prefix;
    Tags.of(this).add('service', 'database-unit');
    Tags.of(this).add('environment', cfg.name);
    const retain = cfg.database.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    // --- network -----------------------------------------------------------------------
    const vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cfg.network.cidr),
      maxAzs: cfg.network.maxAzs,
      natGateways: cfg.network.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });

    const albSg = new ec2.SecurityGroup(this, 'LoadBalancerSg', {
      vpc,
      description: 'database-unit internal ALB: HTTP from the VPC (the app services)',
      allowAllOutbound: false,
    });
    const appSg = new ec2.SecurityGroup(this, 'ApplicationSg', {
      vpc,
      description: 'application-sg: the database-unit service tasks',
      allowAllOutbound: true,
    });
    const pgbouncerSg = new ec2.SecurityGroup(this, 'PgBouncerSg', {
      vpc,
      description: 'PgBouncer tasks',
      allowAllOutbound: true,
    });
    const databaseSg = new ec2.SecurityGroup(this, 'DatabaseSg', {
      vpc,
      description: 'database-sg: RDS PostgreSQL',
      allowAllOutbound: false,
    });
    const cacheSg = new ec2.SecurityGroup(this, 'CacheSg', {
      vpc,
      description: 'cache-sg: ElastiCache Redis',
      allowAllOutbound: false,
    });
    albSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(80), 'HTTP from the VPC');
    albSg.addEgressRule(appSg, ec2.Port.tcp(cfg.service.port), 'to the service tasks');
    appSg.addIngressRule(albSg, ec2.Port.tcp(cfg.service.port), 'from the ALB');
    databaseSg.addIngressRule(appSg, ec2.Port.tcp(5432), 'PostgreSQL access from application');
    databaseSg.addIngressRule(pgbouncerSg, ec2.Port.tcp(5432), 'PostgreSQL access from PgBouncer');
    pgbouncerSg.addIngressRule(appSg, ec2.Port.tcp(6432), 'PgBouncer access from application');
    cacheSg.addIngressRule(appSg, ec2.Port.tcp(6379), 'Redis access from application');

    // --- keys and secrets -------------------------------------------------------------------
    const key = (id: string, alias: string, description: string): kms.Key =>
      new kms.Key(this, id, {
        alias: `alias/${prefix}-${alias}`,
        description,
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    const databaseKey = key(
      'DatabaseKey',
      'rds',
      'RDS storage, snapshots, Performance Insights and database secrets',
    );
    const cacheKey = key('CacheKey', 'elasticache', 'ElastiCache at rest and the Redis auth token');
    const personalDataKey = key(
      'PersonalDataKey',
      'personal-data',
      "The service's envelope encryption of personal data (KMS_AWS_KEY_ID) and its secrets",
    );

    const secret = (
      id: string,
      name: string,
      encryptionKey: kms.IKey,
      generate: secretsmanager.SecretStringGenerator,
      description: string,
    ): secretsmanager.Secret =>
      new secretsmanager.Secret(this, id, {
        secretName: `${prefix}/${name}`,
        description,
        encryptionKey,
        generateSecretString: generate,
        removalPolicy: retain,
      });
    const password = (username: string): secretsmanager.SecretStringGenerator => ({
      secretStringTemplate: JSON.stringify({ username }),
      generateStringKey: 'password',
      passwordLength: 40,
      excludePunctuation: true,
    });
    const appDbSecret = secret(
      'AppDbSecret',
      'db-app',
      databaseKey,
      password('app'),
      'PostgreSQL role app: the service and PgBouncer',
    );
    const ownerDbSecret = secret(
      'OwnerDbSecret',
      'db-app-owner',
      databaseKey,
      password('app_owner'),
      'PostgreSQL role app_owner: migrations only',
    );
    const pgbouncerAdminSecret = secret(
      'PgBouncerAdminSecret',
      'pgbouncer-admin',
      databaseKey,
      password('pgbouncer_admin'),
      'PgBouncer admin console (the pool controller)',
    );
    const cacheAuthSecret = secret(
      'CacheAuthToken',
      'redis-auth-token',
      cacheKey,
      { passwordLength: 64, excludePunctuation: true },
      'ElastiCache AUTH token',
    );
    const apiKeysSecret = secret(
      'ApiKeysSecret',
      'api-keys',
      personalDataKey,
      { secretStringTemplate: '{}', generateStringKey: 'placeholder' },
      'API_KEYS of the service: replace with the JSON list of keys (docs/aws.md)',
    );
    const piiHashSecret = secret(
      'PiiHashSecret',
      'pii-hash-key',
      personalDataKey,
      { passwordLength: 64, excludePunctuation: true },
      'PII_HASH_KEY: keyed hash of e-mail addresses',
    );
    const tlsSecret = secret(
      'TlsSecret',
      'tls',
      personalDataKey,
      { secretStringTemplate: '{}', generateStringKey: 'placeholder' },
      'PgBouncer certificate and key, and the CA bundle (RDS + PgBouncer CA): put with docs/aws.md § TLS',
    );

    // --- RDS PostgreSQL -----------------------------------------------------------------
    const db = cfg.database;
    const engine = rds.DatabaseInstanceEngine.postgres({
      version: rds.PostgresEngineVersion.of(db.engineVersion, db.engineMajorVersion),
    });
    const parameterGroup = new rds.ParameterGroup(this, 'DbParameters', {
      engine,
      name: `${prefix}-postgres${db.engineMajorVersion}`,
      description: 'database-unit: TLS forced, pg_stat_statements, pgvector, slow statements',
      parameters: {
        'rds.force_ssl': '1',
        shared_preload_libraries: 'pg_stat_statements',
        'rds.allowed_extensions': 'vector,pg_stat_statements',
        log_min_duration_statement: String(db.slowStatementMs),
        'pg_stat_statements.track': 'top',
      },
    });
    const subnetGroup = new rds.SubnetGroup(this, 'DbSubnets', {
      vpc,
      vpcSubnets: DATA_SUBNETS,
      subnetGroupName: `${prefix}-private`,
      description: 'private-subnet-group: the database subnets',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const primaryId = `${prefix}-primary`;
    const primary = new rds.DatabaseInstance(this, 'Primary', {
      instanceIdentifier: primaryId,
      engine,
      instanceType: new ec2.InstanceType(db.instanceClass.replace(/^db\./, '')),
      vpc,
      subnetGroup,
      securityGroups: [databaseSg],
      publiclyAccessible: false,
      credentials: rds.Credentials.fromGeneratedSecret(db.masterUsername, {
        secretName: `${prefix}/db-master`,
        encryptionKey: databaseKey,
      }),
      databaseName: db.databaseName,
      storageType: db.storageType === 'gp3' ? rds.StorageType.GP3 : rds.StorageType.GP2,
      allocatedStorage: db.allocatedStorageGb,
      maxAllocatedStorage: db.maxAllocatedStorageGb,
      storageEncrypted: true,
      storageEncryptionKey: databaseKey,
      multiAz: db.multiAz,
      backupRetention: Duration.days(db.backupRetentionDays),
      preferredBackupWindow: db.backupWindow,
      preferredMaintenanceWindow: db.maintenanceWindow,
      copyTagsToSnapshot: true,
      enablePerformanceInsights: true,
      performanceInsightRetention:
        db.performanceInsightsRetentionDays as rds.PerformanceInsightRetention,
      performanceInsightEncryptionKey: databaseKey,
      monitoringInterval: Duration.seconds(db.monitoringIntervalSeconds),
      cloudwatchLogsExports: db.logExports,
      cloudwatchLogsRetention: db.logRetentionDays as logs.RetentionDays,
      parameterGroup,
      caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
      autoMinorVersionUpgrade: true,
      deletionProtection: db.deletionProtection,
      removalPolicy: db.deletionProtection ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    });

    const replicas = Array.from({ length: cfg.replicas.count }, (_, i) => {
      const r = cfg.replicas;
      const replica = new rds.DatabaseInstanceReadReplica(this, `Replica${i + 1}`, {
        instanceIdentifier: `${prefix}-replica-${i + 1}`,
        sourceDatabaseInstance: primary,
        instanceType: new ec2.InstanceType(r.instanceClass.replace(/^db\./, '')),
        vpc,
        subnetGroup,
        securityGroups: [databaseSg],
        publiclyAccessible: false,
        storageEncrypted: true,
        storageEncryptionKey: databaseKey,
        parameterGroup,
        monitoringInterval: Duration.seconds(r.monitoringIntervalSeconds),
        autoMinorVersionUpgrade: r.autoMinorVersionUpgrade,
        enablePerformanceInsights: true,
        performanceInsightRetention:
          db.performanceInsightsRetentionDays as rds.PerformanceInsightRetention,
        performanceInsightEncryptionKey: databaseKey,
        caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
        deletionProtection: db.deletionProtection,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      // a replica inherits encryption from its source: CloudFormation refuses StorageEncrypted
      // beside SourceDBInstanceIdentifier (its KmsKeyId stays)
      (replica.node.defaultChild as rds.CfnDBInstance).addPropertyDeletionOverride(
        'StorageEncrypted',
      );
      return replica;
    });

    // --- ElastiCache Redis ----------------------------------------------------------------
    const c = cfg.cache;
    const cacheSubnets = new elasticache.CfnSubnetGroup(this, 'CacheSubnets', {
      cacheSubnetGroupName: `${prefix}-cache`,
      description: 'private-subnet-group: the cache subnets',
      subnetIds: vpc.selectSubnets(DATA_SUBNETS).subnetIds,
    });
    const cacheParameters = new elasticache.CfnParameterGroup(this, 'CacheParameters', {
      cacheParameterGroupFamily: c.parameterFamily,
      description: `database-unit: maxmemory-policy ${c.maxmemoryPolicy}`,
      properties: { 'maxmemory-policy': c.maxmemoryPolicy },
    });
    const cacheId = `${prefix}-cache`;
    const cache = new elasticache.CfnReplicationGroup(this, 'Cache', {
      replicationGroupId: cacheId,
      replicationGroupDescription: 'database-unit L2 cache',
      engine: 'redis',
      engineVersion: c.engineVersion,
      cacheNodeType: c.nodeType,
      numCacheClusters: 1,
      automaticFailoverEnabled: false,
      port: 6379,
      cacheParameterGroupName: cacheParameters.ref,
      cacheSubnetGroupName: cacheSubnets.ref,
      securityGroupIds: [cacheSg.securityGroupId],
      atRestEncryptionEnabled: true,
      kmsKeyId: cacheKey.keyArn,
      transitEncryptionEnabled: true,
      authToken: cacheAuthSecret.secretValue.unsafeUnwrap(),
      snapshotRetentionLimit: c.snapshotRetentionDays,
      snapshotWindow: c.snapshotWindow,
      preferredMaintenanceWindow: c.maintenanceWindow,
      autoMinorVersionUpgrade: true,
    });

    // --- alarms -------------------------------------------------------------------------
    const topics = new Map<string, sns.Topic>();
    for (const severity of cfg.alarms.severities) {
      const topic = new sns.Topic(this, `Alarms-${severity}`, {
        topicName: `${prefix}-alarms-${severity}`,
        displayName: `database-unit ${cfg.name} ${severity} alarms`,
      });
      if (cfg.alarms.emailSeverities.includes(severity)) {
        for (const email of cfg.alarms.emails) {
          topic.addSubscription(new subscriptions.EmailSubscription(email));
        }
      }
      topics.set(severity, topic);
    }
    // the provisioned CloudWatch alarms (npm run cloudwatch:provision) notify the most urgent
    const alarmTopic = topics.get(cfg.alarms.severities[0]);

    // --- ECS: PgBouncer and the service ---------------------------------------------------
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      clusterName: prefix,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      defaultCloudMapNamespace: { name: `${cfg.name}.dbu.internal`, vpc },
    });
    const logGroup = (id: string, name: string): logs.LogGroup =>
      new logs.LogGroup(this, id, {
        logGroupName: name,
        retention: cfg.service.logRetentionDays as logs.RetentionDays,
        removalPolicy: retain,
      });

    const pgb = cfg.pgbouncer;
    const pgbouncerTask = new ecs.FargateTaskDefinition(this, 'PgBouncerTask', {
      family: `${prefix}-pgbouncer`,
      cpu: pgb.cpu,
      memoryLimitMiB: pgb.memoryMiB,
    });
    pgbouncerTask.addContainer('pgbouncer', {
      image: ecs.ContainerImage.fromRegistry(pgb.image),
      entryPoint: ['/bin/sh', '-c'],
      command: [PGBOUNCER_START],
      environment: {
        APP_DB_USER: 'app',
        PGBOUNCER_ADMIN_USER: 'pgbouncer_admin',
        PGBOUNCER_INI: pgbouncerIni(
          cfg,
          primary.dbInstanceEndpointAddress,
          replicas.map((r) => r.dbInstanceEndpointAddress),
          db.databaseName,
        ),
      },
      secrets: {
        APP_DB_PASSWORD: ecs.Secret.fromSecretsManager(appDbSecret, 'password'),
        PGBOUNCER_ADMIN_PASSWORD: ecs.Secret.fromSecretsManager(pgbouncerAdminSecret, 'password'),
        TLS_CERT: ecs.Secret.fromSecretsManager(tlsSecret, 'pgbouncerCert'),
        TLS_KEY: ecs.Secret.fromSecretsManager(tlsSecret, 'pgbouncerKey'),
        TLS_CA_BUNDLE: ecs.Secret.fromSecretsManager(tlsSecret, 'caBundle'),
      },
      portMappings: [{ containerPort: 6432, name: 'pgbouncer' }],
      // spec connection_pooling.health_checks: interval 30 s, timeout 10 s, 3 failures
      healthCheck: {
        command: ['CMD', 'pg_isready', '-q', '-h', '127.0.0.1', '-p', '6432'],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(10),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      logging: ecs.LogDrivers.awsLogs({
        streamPrefix: 'pgbouncer',
        logGroup: logGroup('PgBouncerLogs', `/database-unit/${cfg.name}/pgbouncer`),
      }),
    });
    const pgbouncer = new ecs.FargateService(this, 'PgBouncer', {
      serviceName: `${prefix}-pgbouncer`,
      cluster,
      taskDefinition: pgbouncerTask,
      desiredCount: pgb.desiredCount,
      securityGroups: [pgbouncerSg],
      vpcSubnets: APP_SUBNETS,
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
      cloudMapOptions: { name: 'pgbouncer' },
    });

    const svc = cfg.service;
    const serviceLogGroupName = `/database-unit/${cfg.name}/service`;
    const serviceLogs = logGroup('ServiceLogs', serviceLogGroupName);
    const serviceTask = new ecs.FargateTaskDefinition(this, 'ServiceTask', {
      family: `${prefix}-service`,
      cpu: svc.cpu,
      memoryLimitMiB: svc.memoryMiB,
    });
    const image = svc.image
      ? ecs.ContainerImage.fromRegistry(svc.image)
      : ecs.ContainerImage.fromAsset(props.serviceSource ?? join(__dirname, '..', '..', '..'), {
          file: 'Dockerfile',
          exclude: [
            'node_modules',
            'infra',
            'dist',
            '.stack',
            '.data',
            '.git',
            'coverage',
            'bench/results',
          ],
        });
    const nodes = [primary, ...replicas].map((i) => `${i.dbInstanceEndpointAddress}:5432`);
    const environment: Record<string, string> = {
      NODE_ENV: 'production',
      PORT: String(svc.port),
      LOG_LEVEL: 'info',
      DB_NODES: nodes.join(','),
      DB_NAME: db.databaseName,
      DB_USER: 'app',
      DB_SSL: 'verify-full',
      DB_SSL_CA: '/tmp/dbu-tls/ca.pem',
      DB_MIGRATIONS_RUN: 'false',
      DB_ROUTE_VIA_PGBOUNCER: 'true',
      PGBOUNCER_HOST: `pgbouncer.${cfg.name}.dbu.internal`,
      PGBOUNCER_PORT: '6432',
      PGBOUNCER_DB_RW: db.databaseName,
      PGBOUNCER_DB_RO: `${db.databaseName}_ro`,
      PGBOUNCER_ADMIN_USER: 'pgbouncer_admin',
      // RDS promotes (and Multi-AZ fails over) by itself; the service only follows the writer
      FAILOVER_MODE: 'off',
      REDIS_URL: `rediss://${cache.attrPrimaryEndPointAddress}:6379`,
      KMS_PROVIDER: 'aws',
      KMS_AWS_KEY_ID: personalDataKey.keyArn,
      KMS_AWS_REGION: this.region,
      CLOUDWATCH_ENABLED: 'true',
      CLOUDWATCH_REGION: this.region,
      CLOUDWATCH_NAMESPACE: svc.metricsNamespace,
      CLOUDWATCH_ENVIRONMENT: cfg.name,
      CLOUDWATCH_LOG_GROUP: serviceLogGroupName,
      CLOUDWATCH_LOG_RETENTION_DAYS: String(svc.logRetentionDays),
      CLOUDWATCH_RDS_INSTANCES: [primaryId, ...replicas.map((r) => r.instanceIdentifier)].join(','),
      CLOUDWATCH_ELASTICACHE_CLUSTERS: `${cacheId}-001`,
      BACKUP_PROVIDER: 'rds',
      BACKUP_RDS_REGION: this.region,
      BACKUP_RDS_INSTANCE_ID: primaryId,
      BACKUP_RDS_SUBNET_GROUP: subnetGroup.subnetGroupName,
      BACKUP_RDS_SECURITY_GROUPS: databaseSg.securityGroupId,
      BACKUP_RDS_EXPECTED_RETENTION_DAYS: String(db.backupRetentionDays),
      BACKUP_RDS_EXPECTED_WINDOW: db.backupWindow,
      BACKUP_RDS_DB_USER: db.masterUsername,
    };
    if (alarmTopic) {
      environment.CLOUDWATCH_ALARM_TOPIC_ARN = alarmTopic.topicArn;
    }
    const scaling = cfg.replicas.autoscaling;
    if (scaling.enabled) {
      // the service's leader-only autoscaler (src/database/autoscaling); its replicas are
      // named under the prefix the task role may create and delete
      Object.assign(environment, {
        REPLICA_AUTOSCALING_ENABLED: 'true',
        REPLICA_AUTOSCALING_MIN: String(scaling.minReplicas),
        REPLICA_AUTOSCALING_MAX: String(scaling.maxReplicas),
        REPLICA_AUTOSCALING_CPU_PERCENT: String(scaling.cpuThresholdPercent),
        REPLICA_AUTOSCALING_CONNECTIONS_PERCENT: String(scaling.connectionsThresholdPercent),
        REPLICA_AUTOSCALING_RDS_INSTANCE_ID: primaryId,
        REPLICA_AUTOSCALING_INSTANCE_CLASS: cfg.replicas.instanceClass,
        REPLICA_AUTOSCALING_ID_PREFIX: `${prefix}-replica-auto`,
        REPLICA_AUTOSCALING_REGION: this.region,
      });
    }
    const serviceSecrets: Record<string, ecs.Secret> = {
      DB_PASSWORD: ecs.Secret.fromSecretsManager(appDbSecret, 'password'),
      PGBOUNCER_ADMIN_PASSWORD: ecs.Secret.fromSecretsManager(pgbouncerAdminSecret, 'password'),
      REDIS_PASSWORD: ecs.Secret.fromSecretsManager(cacheAuthSecret),
      API_KEYS: ecs.Secret.fromSecretsManager(apiKeysSecret, 'keys'),
      PII_HASH_KEY: ecs.Secret.fromSecretsManager(piiHashSecret),
      DB_CA_BUNDLE: ecs.Secret.fromSecretsManager(tlsSecret, 'caBundle'),
      BACKUP_RDS_DB_PASSWORD: ecs.Secret.fromSecretsManager(primary.secret!, 'password'),
    };
    serviceTask.addContainer('service', {
      image,
      entryPoint: ['/usr/bin/tini', '--', '/bin/sh', '-c'],
      command: [SERVICE_START],
      environment,
      secrets: serviceSecrets,
      portMappings: [{ containerPort: svc.port, name: 'http' }],
      healthCheck: {
        command: [
          'CMD',
          'node',
          '-e',
          "require('http').get({host:'127.0.0.1',port:process.env.PORT,path:'/health/live',timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))",
        ],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(60),
      },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'service', logGroup: serviceLogs }),
    });
    this.grantServiceActions(serviceTask.taskRole, cfg, personalDataKey);

    const service = new ecs.FargateService(this, 'Service', {
      serviceName: `${prefix}-service`,
      cluster,
      taskDefinition: serviceTask,
      desiredCount: svc.desiredCount,
      securityGroups: [appSg],
      vpcSubnets: APP_SUBNETS,
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
      healthCheckGracePeriod: Duration.seconds(120),
    });
    service.node.addDependency(pgbouncer);

    // migrations: a one-off task (docs/aws.md), the only holder of app_owner's password
    const migrateTask = new ecs.FargateTaskDefinition(this, 'MigrateTask', {
      family: `${prefix}-migrate`,
      cpu: 256,
      memoryLimitMiB: 512,
    });
    migrateTask.addContainer('migrate', {
      image,
      entryPoint: ['/usr/bin/tini', '--', '/bin/sh', '-c'],
      command: [SERVICE_START.replace('dist/src/main.js', 'dist/src/database/migrate.cli.js')],
      environment: {
        NODE_ENV: 'production',
        DB_NODES: nodes[0],
        DB_NAME: db.databaseName,
        DB_USER: 'app',
        DB_MIGRATION_USER: 'app_owner',
        DB_SSL: 'verify-full',
        DB_SSL_CA: '/tmp/dbu-tls/ca.pem',
      },
      secrets: {
        DB_MIGRATION_PASSWORD: ecs.Secret.fromSecretsManager(ownerDbSecret, 'password'),
        DB_PASSWORD: ecs.Secret.fromSecretsManager(appDbSecret, 'password'),
        DB_CA_BUNDLE: ecs.Secret.fromSecretsManager(tlsSecret, 'caBundle'),
        PII_HASH_KEY: ecs.Secret.fromSecretsManager(piiHashSecret),
      },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'migrate', logGroup: serviceLogs }),
    });

    const alb = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      loadBalancerName: `${prefix}-alb`,
      vpc,
      internetFacing: false,
      securityGroup: albSg,
      vpcSubnets: APP_SUBNETS,
      dropInvalidHeaderFields: true,
    });
    const listener = alb.addListener('Http', { port: 80, open: false });
    listener.addTargets('Service', {
      port: svc.port,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [service],
      deregistrationDelay: Duration.seconds(30),
      healthCheck: {
        path: '/health/ready',
        healthyHttpCodes: '200',
        interval: Duration.seconds(30),
        timeout: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });

    new CfnOutput(this, 'ServiceUrl', { value: `http://${alb.loadBalancerDnsName}` });
    new CfnOutput(this, 'PrimaryEndpoint', { value: primary.dbInstanceEndpointAddress });
    new CfnOutput(this, 'CacheEndpoint', { value: cache.attrPrimaryEndPointAddress });
    new CfnOutput(this, 'MigrateTaskDefinition', { value: migrateTask.taskDefinitionArn });
    new CfnOutput(this, 'TlsSecretArn', { value: tlsSecret.secretArn });
    new CfnOutput(this, 'ApiKeysSecretArn', { value: apiKeysSecret.secretArn });
  }

  /**
   * Exactly what the service calls (docs/aws.md § IAM): its data key, its metrics, and the RDS
   * actions of the backup provider and the replica autoscaler on this environment's
   * instances, snapshots, subnet group and parameter group only.
   */
  private grantServiceActions(
    role: iam.IRole,
    cfg: EnvironmentConfig,
    personalDataKey: kms.IKey,
  ): void {
    const arn = (type: string, name: string): string =>
      `arn:${this.partition}:rds:${this.region}:${this.account}:${type}:${name}`;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PersonalDataKey',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [personalDataKey.keyArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PublishMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': cfg.service.metricsNamespace } },
      }),
    );
    // CreateDBInstanceReadReplica is the autoscaler's alone
    const rdsActions = cfg.replicas.autoscaling.enabled
      ? SERVICE_RDS_ACTIONS
      : SERVICE_RDS_ACTIONS.filter((a) => a !== 'rds:CreateDBInstanceReadReplica');
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'BackupsAndReplicas',
        actions: rdsActions,
        resources: [
          // the primary, its replicas (also those the autoscaler adds), their snapshots
          arn('db', `${this.prefix}-*`),
          arn('snapshot', `${this.prefix}-*`),
          // scratch instances of restores and backup validation (src/backup)
          arn('db', `${cfg.database.databaseName}-restore-*`),
          arn('db', `${cfg.database.databaseName}-validation-*`),
          arn('auto-backup', '*'),
          arn('subgrp', `${this.prefix}-private`),
          arn('pg', `${this.prefix}-postgres${cfg.database.engineMajorVersion}`),
          arn('og', `default:postgres-${cfg.database.engineMajorVersion}`),
        ],
      }),
    );
    if (cfg.replicas.autoscaling.enabled) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReadReplicaMetrics',
          // GetMetricData has no resource-level permissions
          actions: ['cloudwatch:GetMetricData'],
          resources: ['*'],
        }),
      );
    }
  }
}
