import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import { CacheStrategyName, DbSslMode, EnvironmentVariables } from './env.schema.js';
import { ApiKeyConfig, parseApiKeys, parseNodeList } from './validators.js';
import { AlertRule, AlertSeverity, resolveAlertRules } from './alerting.config.js';
import type { VectorStorage } from '../recipes/vector-storage.js';

export interface NodeAddress {
  host: string;
  port: number;
}

export interface DatabaseConfig {
  nodes: NodeAddress[];
  name: string;
  user: string;
  password: string | undefined;
  /** Owner of the schema; migrations connect as it (never the service's queries). */
  migrationUser: string;
  migrationPassword: string | undefined;
  ssl: DbTlsConfig;
  connectTimeoutMs: number;
  bootTimeoutMs: number;
  pool: { default: number; min: number; max: number; reserve: number };
  poolControl: {
    evalIntervalMs: number;
    scaleUpThreshold: number;
    scaleDownThreshold: number;
    scaleUpStep: number;
    scaleDownStep: number;
    maxConnectionsShare: number;
    alertWaitMs: number;
  };
  readDefault: 'replica' | 'primary';
  migrationsRun: boolean;
  routeViaPgBouncer: boolean;
  health: {
    intervalMs: number;
    timeoutMs: number;
    unhealthyThreshold: number;
    healthyThreshold: number;
  };
  /** Replicas over either bound are skipped for reads. */
  readMaxLag: { seconds: number; bytes: number };
  queryTimeoutMs: number;
  slowQueryMs: number;
  idempotencyTtlHours: number;
  failover: { mode: 'auto' | 'manual' | 'off'; maxLagBytes: number; retryAfterSeconds: number };
}

/** DB_SSL and DB_SSL_CA: how every PostgreSQL and PgBouncer connection uses TLS. */
export interface DbTlsConfig {
  mode: DbSslMode;
  /** DB_SSL_CA as given (for libpq programs), or null for the system's trust store. */
  caFile: string | null;
  /** Its PEM contents, read once at boot. */
  ca: string | null;
}

export interface RedisConfig {
  url: string;
  connectTimeoutMs: number;
  username: string | undefined;
  password: string | undefined;
  /** REDIS_TLS_CA's PEM contents (rediss:// only), or null for the system's trust store. */
  tlsCa: string | null;
}

export interface PgBouncerConfig {
  ssl: DbTlsConfig;
  host: string;
  port: number;
  dbRw: string;
  dbRo: string;
  adminUser: string;
  adminPassword: string | undefined;
}

export interface AppConfig {
  env: 'development' | 'production' | 'test';
  http: {
    host: string;
    port: number;
    shutdownDrainMs: number;
    json: { maxDepth: number; maxKeys: number };
    /** cached GET /v1/recipes/:id answered before NestJS's pipeline (HTTP_FAST_PATH) */
    fastPath: boolean;
    /** a `Server-Timing` header with each request's stage durations (HTTP_SERVER_TIMING) */
    serverTiming: boolean;
    /** origins allowed cross-origin (HTTP_CORS_ORIGINS); empty: CORS closed */
    corsOrigins: string[];
  };
  logLevel: string;
  database: DatabaseConfig;
  /** null when PgBouncer is not part of this deployment. */
  pgbouncer: PgBouncerConfig | null;
  redis: RedisConfig;
  /** ALLOW_INSECURE_TRANSPORT: production may run without TLS (a warning at every boot). */
  insecureTransport: { allowed: boolean; reasons: string[] };
  security: {
    apiKeys: ApiKeyConfig[];
    rateLimit: { ttlMs: number; limit: number; store: 'redis' | 'memory' };
    metricsRequireKey: boolean;
  };
  jobs: { enabled: boolean; canaryCron: string };
  monitoring: MonitoringConfig;
  dashboard: DashboardConfig;
  insights: InsightsConfig;
  alerting: AlertingConfig;
  vector: VectorConfig;
  embeddings: EmbeddingsConfig;
  cache: CacheConfig;
  audit: { retentionYears: number; maintenanceCron: string };
  backup: BackupConfig;
  crypto: CryptoConfig;
  gdpr: GdprConfig;
  cloudwatch: CloudWatchConfig;
  replicaAutoscaling: ReplicaAutoscalingConfig;
}

/** REPLICA_AUTOSCALING_*: the leader-only replica autoscaler (spec read_replicas.scaling). */
export interface ReplicaAutoscalingConfig {
  enabled: boolean;
  provider: 'rds' | 'local';
  minReplicas: number;
  maxReplicas: number;
  cpuPercent: number;
  connectionsPercent: number;
  scaleInCpuPercent: number;
  scaleInConnectionsPercent: number;
  scaleOutMs: number;
  scaleInMs: number;
  scaleOutCooldownMs: number;
  scaleInCooldownMs: number;
  intervalMs: number;
  retryMs: number;
  retryMaxMs: number;
  /** 0: the writer's max_connections. */
  maxConnections: number;
  /** How often every instance lists the replicas and adds new ones to its topology. */
  discoveryMs: number;
  local: {
    ports: { from: number; to: number };
    /** 0: this machine's. */
    vcpus: number;
    stackDir: string;
    stackScript: string;
  };
  rds: {
    /** Required when enabled (checked at boot). */
    sourceId: string | undefined;
    instanceClass: string;
    idPrefix: string;
    region: string;
    endpoint: string | undefined;
    cloudwatchEndpoint: string | undefined;
  };
}

export interface CloudWatchConfig {
  /** The metrics publisher runs only when true; provisioning works either way. */
  enabled: boolean;
  namespace: string;
  region: string;
  /** Only for a non-AWS endpoint (tests, LocalStack). */
  endpoint: string | undefined;
  intervalMs: number;
  maxBacklog: number;
  maxAttempts: number;
  /** Value of the `environment` dimension. */
  environment: string;
  logGroup: string;
  logRetentionDays: number;
  alarmTopicArn: string | undefined;
  rdsInstances: string[];
  elastiCacheClusters: string[];
}

export interface DashboardConfig {
  /** 0: no samples (the charts stay empty). */
  sampleSeconds: number;
  historyPoints: number;
  sessionMinutes: number;
}

export interface MonitoringConfig {
  /** 0: the sampler is off. */
  sampleSeconds: number;
  statementTimeoutMs: number;
  /** CPUs per database node for the CPU estimate; 0: no estimate. */
  dbVcpus: number;
}

export interface AlertingConfig {
  enabled: boolean;
  evalIntervalMs: number;
  rules: AlertRule[];
  /** 0: a firing alert is sent once. */
  renotifyMs: number;
  recentHours: number;
  delivery: { intervalMs: number; maxBackoffMs: number; timeoutMs: number };
  /** null: the channel is not configured (nothing is queued for it). */
  email: {
    to: string[];
    from: string;
    severities: AlertSeverity[];
    smtp: {
      host: string;
      port: number;
      tls: 'starttls' | 'tls' | 'none';
      user: string | undefined;
      password: string | undefined;
    };
  } | null;
  slack: { webhookUrl: string; channel: string; severities: AlertSeverity[] } | null;
}

export interface InsightsConfig {
  /** 0: the insights sampler is off. */
  sampleIntervalMs: number;
  snapshotSeconds: number;
  retentionDays: number;
  maxStatementsPerSnapshot: number;
}

export interface BackupConfig {
  provider: 'pgbackrest' | 'rds' | 'off';
  pgbackrest: { config: string; stanza: string; bin: string };
  /** Run pgBackRest and scratch PostgreSQL instances as this OS user (the service runs as root). */
  osUser: string | undefined;
  pgBin: string;
  schedule: { dailyCron: string; weeklyCron: string; validationCron: string };
  retention: { dailyDays: number; weeklyWeeks: number };
  scratch: { dir: string; ports: { from: number; to: number }; restoreTtlMinutes: number };
  objectives: { rtoSeconds: number; rpoSeconds: number };
  perfTolerance: number;
  durationAlertMinutes: number;
  rds: RdsBackupConfig;
}

/** BACKUP_PROVIDER=rds: the source instance, the temporary instances, the expected settings. */
export interface RdsBackupConfig {
  region: string;
  /** Required with BACKUP_PROVIDER=rds (checked at boot). */
  instanceId: string | undefined;
  endpoint: string | undefined;
  testInstanceClass: string;
  testStorageType: string;
  subnetGroup: string | undefined;
  securityGroups: string[];
  expected: { retentionDays: number; window: string };
  /** The checks connect to a temporary instance as this user (over TCP, TLS when required). */
  dbUser: string;
  dbPassword: string | undefined;
  waitMs: number;
  pollMs: number;
}

export interface CryptoConfig {
  provider: 'local' | 'aws';
  local: { keyFile: string; keys: string | undefined; currentVersion: string | undefined };
  aws: { keyId: string | undefined; region: string; endpoint: string | undefined };
  /** base64; undefined in development means "the local key file's hash key". */
  piiHashKey: string | undefined;
  dataKeyCache: { ttlMs: number; max: number };
  keystoreDatabase: string;
  /** null: the application's writer (follows failovers). */
  keystoreNode: NodeAddress | null;
  keystoreUser: string | undefined;
  keystorePassword: string | undefined;
}

export interface GdprConfig {
  exportDir: string;
  exportRetentionDays: number;
  downloadTokenTtlSeconds: number;
  exportPurgeCron: string;
  complianceReportCron: string;
}

export type CacheType = 'user_profiles' | 'recipes' | 'search_results' | 'taste_profiles';

export interface CacheTypeConfig {
  ttlSeconds: number;
  strategy: CacheStrategyName;
}

export interface CacheConfig {
  enabled: boolean;
  keyVersion: string;
  l1MaxBytes: number;
  defaultTtlSeconds: number;
  types: Record<CacheType, CacheTypeConfig>;
  writeBehind: { flushMs: number; claimIdleMs: number };
  redisOpTimeoutMs: number;
  circuit: { failureThreshold: number; openMs: number };
}

export interface VectorConfig {
  efSearch: number;
  efSearchPerResult: number;
  maxDistance: number;
  candidateLimit: number;
  resultLimit: number;
  queryTimeoutMs: number;
  maxScanTuples: number;
  exactMaxRows: number;
  /** How long a filter set's plan choice is reused (0: the bounded count runs every time). */
  planMemoryMs: number;
  recallSampleRate: number;
  /** Share of time the recall checks may take (VECTOR_RECALL_CHECK_BUDGET). */
  recallCheckBudget: number;
  maintenanceWorkMem: string;
  /** `ef_construction` the rebuild job gives the HNSW index (ALTER INDEX … SET, then REINDEX). */
  efConstruction: number;
  /** Sampled rows that check HNSW answers (0 = no check), and how often they are re-sampled. */
  witnessRows: number;
  witnessRefreshMs: number;
  /**
   * Filter values (a cuisine, a tag, a dietary label) that get witnesses of their own, and
   * how many each: a filtered search is checked against its values' witnesses too.
   */
  witnessStrata: number;
  witnessStratumRows: number;
  /** ef_search of the second attempt when a witness contradicts an answer. */
  escalationEfSearch: number;
  /** Exact escalations at once per instance (0 = repair instead, never an exact scan). */
  escalationExactConcurrency: number;
  parallelWorkers: number;
  /** What the HNSW index holds (vector-storage.ts); a rebuild converts the index to it. */
  storage: VectorStorage;
  /** How often each instance reads the index's size and storage. */
  indexRefreshMs: number;
}

export interface EmbeddingsConfig {
  provider: 'none' | 'openai';
  url: string | undefined;
  model: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

/** Thrown when the environment is invalid; the message names every bad variable. */
export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigValidationError';
  }
}

function describe(errors: ValidationError[]): string[] {
  return errors.map((e) => {
    const constraints = Object.values(e.constraints ?? {}).join('; ');
    // NOTE: never echo the value: it may be a secret.
    return `${e.property}: ${constraints}`;
  });
}

/** A PEM file named by `name`, read now: a missing or unreadable file is a problem of boot. */
function readPem(name: string, path: string | undefined, problems: string[]): string | null {
  if (path === undefined) {
    return null;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(
      `${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
    return null;
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    problems.push(`${name}: ${path} holds no PEM certificate`);
    return null;
  }
  return text;
}

/** What of the settings lets bytes cross a socket in clear or unverified (empty: nothing). */
function insecureTransport(vars: EnvironmentVariables): string[] {
  const reasons: string[] = [];
  if (vars.DB_SSL === 'disable') {
    reasons.push(
      'DB_SSL: disable sends passwords and data to PostgreSQL in clear; use verify-full',
    );
  } else if (vars.DB_SSL === 'require' && !vars.DB_SSL_CA) {
    reasons.push(
      "DB_SSL: require without DB_SSL_CA accepts any server's certificate; use verify-full with DB_SSL_CA",
    );
  }
  if (vars.REDIS_URL.startsWith('redis://')) {
    reasons.push(
      'REDIS_URL: a plain redis:// URL sends data and the AUTH token in clear; use rediss://',
    );
  }
  return reasons;
}

/** The development key files: refused in production. */
export const DEVELOPMENT_KMS_KEY_FILE = '.data/kms/local-keys.json';
/** The id scripts/start-local.sh gives the development API key it generates. */
export const DEVELOPMENT_API_KEY_ID = 'dev';

function developmentSecrets(vars: EnvironmentVariables, apiKeys: ApiKeyConfig[]): string[] {
  const problems: string[] = [];
  if (
    vars.KMS_PROVIDER === 'local' &&
    !vars.KMS_LOCAL_KEYS &&
    resolve(vars.KMS_LOCAL_KEY_FILE) === resolve(DEVELOPMENT_KMS_KEY_FILE)
  ) {
    problems.push(
      `KMS_LOCAL_KEY_FILE: ${DEVELOPMENT_KMS_KEY_FILE} is the development key file; production uses KMS_PROVIDER=aws, KMS_LOCAL_KEYS or a key file of its own`,
    );
  }
  if (apiKeys.some((k) => k.id === DEVELOPMENT_API_KEY_ID)) {
    problems.push(
      `API_KEYS: the key '${DEVELOPMENT_API_KEY_ID}' is the development key of scripts/start-local.sh; production issues keys of its own`,
    );
  }
  return problems;
}

/** Reads, validates and shapes the environment. Only `src/config` reads `process.env`. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const known = Object.keys(new EnvironmentVariables());
  const raw: Record<string, string> = {};
  const optional = [
    'DB_PASSWORD',
    'DB_MIGRATION_PASSWORD',
    'DB_SSL_CA',
    'REDIS_USERNAME',
    'REDIS_PASSWORD',
    'REDIS_TLS_CA',
    'PGBOUNCER_HOST',
    'PGBOUNCER_ADMIN_PASSWORD',
    'EMBEDDINGS_URL',
    'EMBEDDINGS_API_KEY',
    'KMS_LOCAL_KEYS',
    'KMS_LOCAL_CURRENT_VERSION',
    'KMS_AWS_KEY_ID',
    'KMS_AWS_ENDPOINT',
    'PII_HASH_KEY',
    'KEYSTORE_DB_NAME',
    'KEYSTORE_DB_NODE',
    'KEYSTORE_DB_USER',
    'KEYSTORE_DB_PASSWORD',
    'BACKUP_OS_USER',
    'BACKUP_RDS_INSTANCE_ID',
    'BACKUP_RDS_ENDPOINT',
    'BACKUP_RDS_SUBNET_GROUP',
    'BACKUP_RDS_SECURITY_GROUPS',
    'REPLICA_AUTOSCALING_RDS_INSTANCE_ID',
    'REPLICA_AUTOSCALING_ID_PREFIX',
    'REPLICA_AUTOSCALING_REGION',
    'REPLICA_AUTOSCALING_RDS_ENDPOINT',
    'REPLICA_AUTOSCALING_CLOUDWATCH_ENDPOINT',
    'BACKUP_RDS_DB_PASSWORD',
    'CLOUDWATCH_ENDPOINT',
    'CLOUDWATCH_ENVIRONMENT',
    'CLOUDWATCH_ALARM_TOPIC_ARN',
    'CLOUDWATCH_RDS_INSTANCES',
    'CLOUDWATCH_ELASTICACHE_CLUSTERS',
    'ALERTING_RULES',
    'ALERTING_SMTP_HOST',
    'ALERTING_SMTP_USER',
    'ALERTING_SMTP_PASSWORD',
    'SLACK_WEBHOOK_URL',
  ];
  for (const key of [...known, ...optional]) {
    const value = env[key];
    if (value !== undefined && value !== '') {
      raw[key] = value;
    }
  }
  const vars = plainToInstance(EnvironmentVariables, raw);
  const problems = describe(validateSync(vars, { skipMissingProperties: false }));

  if (problems.length === 0) {
    if (vars.DB_POOL_MIN > vars.DB_POOL_DEFAULT) {
      problems.push('DB_POOL_MIN: must not exceed DB_POOL_DEFAULT');
    }
    if (vars.DB_POOL_DEFAULT > vars.DB_POOL_MAX) {
      problems.push('DB_POOL_DEFAULT: must not exceed DB_POOL_MAX');
    }
    if (vars.VECTOR_RESULT_LIMIT > vars.VECTOR_CANDIDATE_LIMIT) {
      problems.push('VECTOR_RESULT_LIMIT: must not exceed VECTOR_CANDIDATE_LIMIT');
    }
    if (vars.DB_MIGRATION_USER === vars.DB_USER) {
      problems.push(
        'DB_MIGRATION_USER: must differ from DB_USER (the service must not own the schema)',
      );
    }
    const ports = portRange(vars.BACKUP_SCRATCH_PORTS);
    if (ports.from > ports.to || ports.to > 65535) {
      problems.push('BACKUP_SCRATCH_PORTS: FROM must not exceed TO, and TO must be a port');
    }
    if (vars.BACKUP_PROVIDER === 'rds' && !vars.BACKUP_RDS_INSTANCE_ID) {
      problems.push('BACKUP_RDS_INSTANCE_ID: required with BACKUP_PROVIDER=rds');
    }
    const localPorts = portRange(vars.REPLICA_AUTOSCALING_LOCAL_PORTS);
    if (localPorts.from > localPorts.to || localPorts.to > 65535) {
      problems.push(
        'REPLICA_AUTOSCALING_LOCAL_PORTS: FROM must not exceed TO, and TO must be a port',
      );
    }
    if (vars.REPLICA_AUTOSCALING_PROVIDER === 'rds') {
      // CloudWatch's RDS metrics come a minute at a time: a shorter window holds no sample
      for (const key of [
        'REPLICA_AUTOSCALING_SCALE_OUT_SECONDS',
        'REPLICA_AUTOSCALING_SCALE_IN_SECONDS',
      ] as const) {
        if (vars[key] < 60) {
          problems.push(`${key}: must be at least 60 with REPLICA_AUTOSCALING_PROVIDER=rds`);
        }
      }
    }
    if (
      vars.REPLICA_AUTOSCALING_ENABLED &&
      vars.REPLICA_AUTOSCALING_PROVIDER === 'rds' &&
      !(vars.REPLICA_AUTOSCALING_RDS_INSTANCE_ID ?? vars.BACKUP_RDS_INSTANCE_ID)
    ) {
      problems.push(
        'REPLICA_AUTOSCALING_RDS_INSTANCE_ID: required with REPLICA_AUTOSCALING_ENABLED (or BACKUP_RDS_INSTANCE_ID)',
      );
    }
    if (vars.REPLICA_AUTOSCALING_MIN > vars.REPLICA_AUTOSCALING_MAX) {
      problems.push('REPLICA_AUTOSCALING_MIN: must not exceed REPLICA_AUTOSCALING_MAX');
    }
    if (vars.REPLICA_AUTOSCALING_SCALE_IN_CPU_PERCENT >= vars.REPLICA_AUTOSCALING_CPU_PERCENT) {
      problems.push(
        'REPLICA_AUTOSCALING_SCALE_IN_CPU_PERCENT: must be below REPLICA_AUTOSCALING_CPU_PERCENT',
      );
    }
    if (
      vars.REPLICA_AUTOSCALING_SCALE_IN_CONNECTIONS_PERCENT >=
      vars.REPLICA_AUTOSCALING_CONNECTIONS_PERCENT
    ) {
      problems.push(
        'REPLICA_AUTOSCALING_SCALE_IN_CONNECTIONS_PERCENT: must be below REPLICA_AUTOSCALING_CONNECTIONS_PERCENT',
      );
    }
    problems.push(...resolveAlertRules(vars.ALERTING_RULES).problems);
    if (vars.NODE_ENV === 'production' && vars.ALERTING_SMTP_TLS === 'none') {
      problems.push('ALERTING_SMTP_TLS: none is for tests; production sends mail over TLS');
    }
    if (vars.DB_ROUTE_VIA_PGBOUNCER && !vars.PGBOUNCER_HOST) {
      problems.push('DB_ROUTE_VIA_PGBOUNCER: needs PGBOUNCER_HOST');
    }
  }
  const dbCa = readPem('DB_SSL_CA', vars.DB_SSL_CA, problems);
  const redisCa = readPem('REDIS_TLS_CA', vars.REDIS_TLS_CA, problems);
  const insecure = problems.length === 0 ? insecureTransport(vars) : [];
  const apiKeys = problems.length === 0 ? parseApiKeys(vars.API_KEYS) : [];
  if (vars.NODE_ENV === 'production' && problems.length === 0) {
    if (!vars.ALLOW_INSECURE_TRANSPORT) {
      problems.push(
        ...insecure.map((r) => `${r} (or set ALLOW_INSECURE_TRANSPORT=true to accept that)`),
      );
    }
    problems.push(...developmentSecrets(vars, apiKeys));
  }
  if (problems.length > 0) {
    throw new ConfigValidationError(problems);
  }
  const dbTls: DbTlsConfig = { mode: vars.DB_SSL, caFile: vars.DB_SSL_CA ?? null, ca: dbCa };

  return Object.freeze({
    env: vars.NODE_ENV,
    http: {
      host: vars.HOST,
      port: vars.PORT,
      shutdownDrainMs: vars.SHUTDOWN_DRAIN_MS,
      json: { maxDepth: vars.HTTP_JSON_MAX_DEPTH, maxKeys: vars.HTTP_JSON_MAX_KEYS },
      fastPath: vars.HTTP_FAST_PATH,
      serverTiming: vars.HTTP_SERVER_TIMING,
      corsOrigins: vars.HTTP_CORS_ORIGINS.split(',').filter((o) => o !== ''),
    },
    logLevel: vars.LOG_LEVEL,
    database: {
      nodes: parseNodeList(vars.DB_NODES),
      name: vars.DB_NAME,
      user: vars.DB_USER,
      // the local stack generates its passwords: `docker/stack.sh env` hands them out
      password: vars.DB_PASSWORD,
      migrationUser: vars.DB_MIGRATION_USER,
      migrationPassword: vars.DB_MIGRATION_PASSWORD,
      ssl: dbTls,
      connectTimeoutMs: vars.DB_CONNECT_TIMEOUT_MS,
      bootTimeoutMs: vars.DB_BOOT_TIMEOUT_MS,
      pool: {
        default: vars.DB_POOL_DEFAULT,
        min: vars.DB_POOL_MIN,
        max: vars.DB_POOL_MAX,
        reserve: vars.DB_POOL_RESERVE,
      },
      poolControl: {
        evalIntervalMs: vars.DB_POOL_EVAL_INTERVAL_MS,
        scaleUpThreshold: vars.DB_POOL_SCALE_UP_THRESHOLD,
        scaleDownThreshold: vars.DB_POOL_SCALE_DOWN_THRESHOLD,
        scaleUpStep: vars.DB_POOL_SCALE_UP_STEP,
        scaleDownStep: vars.DB_POOL_SCALE_DOWN_STEP,
        maxConnectionsShare: vars.DB_POOL_MAX_CONNECTIONS_SHARE,
        alertWaitMs: vars.DB_POOL_ALERT_WAIT_MS,
      },
      readDefault: vars.DB_READ_DEFAULT,
      migrationsRun: vars.DB_MIGRATIONS_RUN,
      routeViaPgBouncer: vars.DB_ROUTE_VIA_PGBOUNCER,
      health: {
        intervalMs: vars.DB_HEALTH_INTERVAL_MS,
        timeoutMs: vars.DB_HEALTH_TIMEOUT_MS,
        unhealthyThreshold: vars.DB_UNHEALTHY_THRESHOLD,
        healthyThreshold: vars.DB_HEALTHY_THRESHOLD,
      },
      readMaxLag: { seconds: vars.DB_READ_MAX_LAG_SECONDS, bytes: vars.DB_READ_MAX_LAG_BYTES },
      queryTimeoutMs: vars.DB_QUERY_TIMEOUT_MS,
      slowQueryMs: vars.DB_SLOW_QUERY_MS,
      idempotencyTtlHours: vars.IDEMPOTENCY_TTL_HOURS,
      failover: {
        mode: vars.FAILOVER_MODE,
        maxLagBytes: vars.FAILOVER_MAX_LAG_BYTES,
        retryAfterSeconds: vars.FAILOVER_RETRY_AFTER_S,
      },
    },
    pgbouncer: vars.PGBOUNCER_HOST
      ? {
          ssl: dbTls,
          host: vars.PGBOUNCER_HOST,
          port: vars.PGBOUNCER_PORT,
          dbRw: vars.PGBOUNCER_DB_RW,
          dbRo: vars.PGBOUNCER_DB_RO,
          adminUser: vars.PGBOUNCER_ADMIN_USER,
          adminPassword: vars.PGBOUNCER_ADMIN_PASSWORD,
        }
      : null,
    redis: {
      url: vars.REDIS_URL,
      connectTimeoutMs: vars.REDIS_CONNECT_TIMEOUT_MS,
      username: vars.REDIS_USERNAME,
      password: vars.REDIS_PASSWORD,
      tlsCa: redisCa,
    },
    insecureTransport: { allowed: vars.ALLOW_INSECURE_TRANSPORT, reasons: insecure },
    security: {
      apiKeys,
      rateLimit: {
        ttlMs: vars.RATE_LIMIT_TTL_MS,
        limit: vars.RATE_LIMIT_LIMIT,
        store: vars.RATE_LIMIT_STORE,
      },
      metricsRequireKey: vars.METRICS_REQUIRE_KEY,
    },
    jobs: { enabled: vars.JOBS_ENABLED, canaryCron: vars.JOB_CANARY_CRON },
    monitoring: {
      sampleSeconds: vars.MONITORING_DB_SAMPLE_SECONDS,
      statementTimeoutMs: vars.MONITORING_STATEMENT_TIMEOUT_MS,
      dbVcpus: vars.MONITORING_DB_VCPUS,
    },
    dashboard: {
      sampleSeconds: vars.DASHBOARD_SAMPLE_SECONDS,
      historyPoints: vars.DASHBOARD_HISTORY_POINTS,
      sessionMinutes: vars.DASHBOARD_SESSION_MINUTES,
    },
    insights: {
      sampleIntervalMs: vars.INSIGHTS_SAMPLE_INTERVAL_MS,
      snapshotSeconds: vars.INSIGHTS_SNAPSHOT_SECONDS,
      retentionDays: vars.INSIGHTS_RETENTION_DAYS,
      maxStatementsPerSnapshot: vars.INSIGHTS_MAX_STATEMENTS_PER_SNAPSHOT,
    },
    vector: {
      efSearch: vars.VECTOR_EF_SEARCH,
      efSearchPerResult: vars.VECTOR_EF_SEARCH_PER_RESULT,
      maxDistance: vars.VECTOR_MAX_DISTANCE,
      candidateLimit: vars.VECTOR_CANDIDATE_LIMIT,
      resultLimit: vars.VECTOR_RESULT_LIMIT,
      queryTimeoutMs: vars.VECTOR_QUERY_TIMEOUT_MS,
      maxScanTuples: vars.VECTOR_MAX_SCAN_TUPLES,
      exactMaxRows: vars.VECTOR_EXACT_MAX_ROWS,
      planMemoryMs: vars.VECTOR_PLAN_MEMORY_S * 1000,
      recallSampleRate: vars.VECTOR_RECALL_SAMPLE_RATE,
      recallCheckBudget: vars.VECTOR_RECALL_CHECK_BUDGET,
      maintenanceWorkMem: vars.VECTOR_MAINTENANCE_WORK_MEM,
      efConstruction: vars.VECTOR_EF_CONSTRUCTION,
      witnessRows: vars.VECTOR_WITNESS_ROWS,
      witnessRefreshMs: vars.VECTOR_WITNESS_REFRESH_S * 1000,
      witnessStrata: vars.VECTOR_WITNESS_STRATA,
      witnessStratumRows: vars.VECTOR_WITNESS_STRATUM_ROWS,
      escalationEfSearch: vars.VECTOR_ESCALATION_EF_SEARCH,
      escalationExactConcurrency: vars.VECTOR_ESCALATION_EXACT_CONCURRENCY,
      parallelWorkers: vars.VECTOR_PARALLEL_WORKERS,
      storage: vars.VECTOR_STORAGE,
      indexRefreshMs: vars.VECTOR_INDEX_REFRESH_S * 1000,
    },
    audit: {
      retentionYears: vars.AUDIT_RETENTION_YEARS,
      maintenanceCron: vars.AUDIT_MAINTENANCE_CRON,
    },
    alerting: {
      enabled: vars.ALERTING_ENABLED,
      evalIntervalMs: vars.ALERTING_EVAL_INTERVAL_MS,
      rules: resolveAlertRules(vars.ALERTING_RULES).rules,
      renotifyMs: vars.ALERTING_RENOTIFY_MINUTES * 60_000,
      recentHours: vars.ALERTING_RECENT_HOURS,
      delivery: {
        intervalMs: vars.ALERTING_DELIVERY_INTERVAL_MS,
        maxBackoffMs: vars.ALERTING_DELIVERY_MAX_BACKOFF_MS,
        timeoutMs: vars.ALERTING_DELIVERY_TIMEOUT_MS,
      },
      email: vars.ALERTING_SMTP_HOST
        ? {
            to: splitList(vars.ALERTING_EMAIL_TO),
            from: vars.ALERTING_EMAIL_FROM,
            severities: splitList(vars.ALERTING_EMAIL_SEVERITIES) as AlertSeverity[],
            smtp: {
              host: vars.ALERTING_SMTP_HOST,
              port: vars.ALERTING_SMTP_PORT,
              tls: vars.ALERTING_SMTP_TLS,
              user: vars.ALERTING_SMTP_USER,
              password: vars.ALERTING_SMTP_PASSWORD,
            },
          }
        : null,
      slack: vars.SLACK_WEBHOOK_URL
        ? {
            webhookUrl: vars.SLACK_WEBHOOK_URL,
            channel: vars.ALERTING_SLACK_CHANNEL,
            severities: splitList(vars.ALERTING_SLACK_SEVERITIES) as AlertSeverity[],
          }
        : null,
    },
    backup: {
      provider: vars.BACKUP_PROVIDER,
      pgbackrest: {
        config: vars.BACKUP_PGBACKREST_CONFIG,
        stanza: vars.BACKUP_PGBACKREST_STANZA,
        bin: vars.BACKUP_PGBACKREST_BIN,
      },
      osUser: vars.BACKUP_OS_USER,
      pgBin: vars.BACKUP_PG_BIN,
      schedule: {
        dailyCron: vars.BACKUP_DAILY_CRON,
        weeklyCron: vars.BACKUP_WEEKLY_CRON,
        validationCron: vars.BACKUP_VALIDATION_CRON,
      },
      retention: {
        dailyDays: vars.BACKUP_DAILY_RETENTION_DAYS,
        weeklyWeeks: vars.BACKUP_WEEKLY_RETENTION_WEEKS,
      },
      scratch: {
        dir: vars.BACKUP_SCRATCH_DIR,
        ports: portRange(vars.BACKUP_SCRATCH_PORTS),
        restoreTtlMinutes: vars.BACKUP_RESTORE_TTL_MINUTES,
      },
      objectives: { rtoSeconds: vars.BACKUP_RTO_SECONDS, rpoSeconds: vars.BACKUP_RPO_SECONDS },
      perfTolerance: vars.BACKUP_PERF_TOLERANCE,
      durationAlertMinutes: vars.BACKUP_DURATION_ALERT_MINUTES,
      rds: {
        region: vars.BACKUP_RDS_REGION,
        instanceId: vars.BACKUP_RDS_INSTANCE_ID,
        endpoint: vars.BACKUP_RDS_ENDPOINT,
        testInstanceClass: vars.BACKUP_RDS_TEST_INSTANCE_CLASS,
        testStorageType: vars.BACKUP_RDS_TEST_STORAGE_TYPE,
        subnetGroup: vars.BACKUP_RDS_SUBNET_GROUP,
        securityGroups: vars.BACKUP_RDS_SECURITY_GROUPS?.split(',') ?? [],
        expected: {
          retentionDays: vars.BACKUP_RDS_EXPECTED_RETENTION_DAYS,
          window: vars.BACKUP_RDS_EXPECTED_WINDOW,
        },
        dbUser: vars.BACKUP_RDS_DB_USER,
        dbPassword: vars.BACKUP_RDS_DB_PASSWORD,
        waitMs: vars.BACKUP_RDS_WAIT_MINUTES * 60_000,
        pollMs: vars.BACKUP_RDS_POLL_MS,
      },
    },
    crypto: {
      provider: vars.KMS_PROVIDER,
      local: {
        keyFile: vars.KMS_LOCAL_KEY_FILE,
        keys: vars.KMS_LOCAL_KEYS,
        currentVersion: vars.KMS_LOCAL_CURRENT_VERSION,
      },
      aws: {
        keyId: vars.KMS_AWS_KEY_ID,
        region: vars.KMS_AWS_REGION,
        endpoint: vars.KMS_AWS_ENDPOINT,
      },
      piiHashKey: vars.PII_HASH_KEY,
      dataKeyCache: { ttlMs: vars.DATA_KEY_CACHE_TTL_MS, max: vars.DATA_KEY_CACHE_MAX },
      keystoreDatabase: vars.KEYSTORE_DB_NAME ?? `${vars.DB_NAME}_keystore`,
      keystoreNode: vars.KEYSTORE_DB_NODE ? parseNodeList(vars.KEYSTORE_DB_NODE)[0] : null,
      keystoreUser: vars.KEYSTORE_DB_USER,
      keystorePassword: vars.KEYSTORE_DB_PASSWORD,
    },
    gdpr: {
      exportDir: vars.GDPR_EXPORT_DIR,
      exportRetentionDays: vars.GDPR_EXPORT_RETENTION_DAYS,
      downloadTokenTtlSeconds: vars.GDPR_DOWNLOAD_TOKEN_TTL_S,
      exportPurgeCron: vars.GDPR_EXPORT_PURGE_CRON,
      complianceReportCron: vars.COMPLIANCE_REPORT_CRON,
    },
    cache: {
      enabled: vars.CACHE_ENABLED,
      keyVersion: vars.CACHE_KEY_VERSION,
      l1MaxBytes: vars.CACHE_L1_MAX_BYTES,
      defaultTtlSeconds: vars.CACHE_DEFAULT_TTL_S,
      types: {
        user_profiles: {
          ttlSeconds: vars.CACHE_USER_PROFILES_TTL_S,
          strategy: vars.CACHE_USER_PROFILES_STRATEGY,
        },
        recipes: { ttlSeconds: vars.CACHE_RECIPES_TTL_S, strategy: vars.CACHE_RECIPES_STRATEGY },
        search_results: {
          ttlSeconds: vars.CACHE_SEARCH_RESULTS_TTL_S,
          strategy: vars.CACHE_SEARCH_RESULTS_STRATEGY,
        },
        taste_profiles: {
          ttlSeconds: vars.CACHE_TASTE_PROFILES_TTL_S,
          strategy: vars.CACHE_TASTE_PROFILES_STRATEGY,
        },
      },
      writeBehind: {
        flushMs: vars.CACHE_WRITE_BEHIND_FLUSH_MS,
        claimIdleMs: vars.CACHE_WRITE_BEHIND_CLAIM_IDLE_MS,
      },
      redisOpTimeoutMs: vars.CACHE_REDIS_OP_TIMEOUT_MS,
      circuit: {
        failureThreshold: vars.CACHE_CIRCUIT_FAILURE_THRESHOLD,
        openMs: vars.CACHE_CIRCUIT_OPEN_MS,
      },
    },
    cloudwatch: {
      enabled: vars.CLOUDWATCH_ENABLED,
      namespace: vars.CLOUDWATCH_NAMESPACE,
      region: vars.CLOUDWATCH_REGION,
      endpoint: vars.CLOUDWATCH_ENDPOINT,
      intervalMs: vars.CLOUDWATCH_INTERVAL_SECONDS * 1000,
      maxBacklog: vars.CLOUDWATCH_MAX_BACKLOG,
      maxAttempts: vars.CLOUDWATCH_MAX_ATTEMPTS,
      environment: vars.CLOUDWATCH_ENVIRONMENT ?? vars.NODE_ENV,
      logGroup: vars.CLOUDWATCH_LOG_GROUP,
      logRetentionDays: vars.CLOUDWATCH_LOG_RETENTION_DAYS,
      alarmTopicArn: vars.CLOUDWATCH_ALARM_TOPIC_ARN,
      rdsInstances: splitList(vars.CLOUDWATCH_RDS_INSTANCES),
      elastiCacheClusters: splitList(vars.CLOUDWATCH_ELASTICACHE_CLUSTERS),
    },
    replicaAutoscaling: ((): ReplicaAutoscalingConfig => {
      const sourceId = vars.REPLICA_AUTOSCALING_RDS_INSTANCE_ID ?? vars.BACKUP_RDS_INSTANCE_ID;
      return {
        enabled: vars.REPLICA_AUTOSCALING_ENABLED,
        provider: vars.REPLICA_AUTOSCALING_PROVIDER,
        minReplicas: vars.REPLICA_AUTOSCALING_MIN,
        maxReplicas: vars.REPLICA_AUTOSCALING_MAX,
        cpuPercent: vars.REPLICA_AUTOSCALING_CPU_PERCENT,
        connectionsPercent: vars.REPLICA_AUTOSCALING_CONNECTIONS_PERCENT,
        scaleInCpuPercent: vars.REPLICA_AUTOSCALING_SCALE_IN_CPU_PERCENT,
        scaleInConnectionsPercent: vars.REPLICA_AUTOSCALING_SCALE_IN_CONNECTIONS_PERCENT,
        scaleOutMs: vars.REPLICA_AUTOSCALING_SCALE_OUT_SECONDS * 1000,
        scaleInMs: vars.REPLICA_AUTOSCALING_SCALE_IN_SECONDS * 1000,
        scaleOutCooldownMs: vars.REPLICA_AUTOSCALING_SCALE_OUT_COOLDOWN_SECONDS * 1000,
        scaleInCooldownMs: vars.REPLICA_AUTOSCALING_SCALE_IN_COOLDOWN_SECONDS * 1000,
        intervalMs: vars.REPLICA_AUTOSCALING_INTERVAL_SECONDS * 1000,
        retryMs: vars.REPLICA_AUTOSCALING_RETRY_SECONDS * 1000,
        retryMaxMs: vars.REPLICA_AUTOSCALING_RETRY_MAX_SECONDS * 1000,
        maxConnections: vars.REPLICA_AUTOSCALING_MAX_CONNECTIONS,
        discoveryMs: vars.REPLICA_AUTOSCALING_DISCOVERY_SECONDS * 1000,
        local: {
          ports: portRange(vars.REPLICA_AUTOSCALING_LOCAL_PORTS),
          vcpus: vars.REPLICA_AUTOSCALING_LOCAL_VCPUS,
          stackDir: vars.REPLICA_AUTOSCALING_LOCAL_STACK_DIR,
          stackScript: vars.REPLICA_AUTOSCALING_LOCAL_STACK_SCRIPT,
        },
        rds: {
          sourceId,
          instanceClass: vars.REPLICA_AUTOSCALING_INSTANCE_CLASS,
          idPrefix: vars.REPLICA_AUTOSCALING_ID_PREFIX ?? `${sourceId ?? 'dbu'}-replica-auto`,
          region: vars.REPLICA_AUTOSCALING_REGION ?? vars.BACKUP_RDS_REGION,
          endpoint: vars.REPLICA_AUTOSCALING_RDS_ENDPOINT,
          cloudwatchEndpoint: vars.REPLICA_AUTOSCALING_CLOUDWATCH_ENDPOINT,
        },
      };
    })(),
    embeddings: {
      provider: vars.EMBEDDINGS_PROVIDER,
      url: vars.EMBEDDINGS_URL,
      model: vars.EMBEDDINGS_MODEL,
      apiKey: vars.EMBEDDINGS_API_KEY,
      timeoutMs: vars.EMBEDDINGS_TIMEOUT_MS,
    },
  });
}

function portRange(range: string): { from: number; to: number } {
  const [from, to] = range.split('-').map(Number);
  return { from, to };
}

function splitList(value: string | undefined): string[] {
  return value ? value.split(',').filter((v) => v !== '') : [];
}
