/**
 * What one environment's stack is built from. The defaults are the values of
 * shared/spec/database-unit-logical-components.md (primary_database, read_replicas,
 * connection_pooling, redis_cache, security_components, network_security,
 * alerting_system); `environments.json` overrides any of them per environment
 * (docs/aws.md lists where each one lands).
 */
export interface EnvironmentConfig {
  /** Environment name: the stack is `DatabaseUnit-<name>`, resources are named `<name>-dbu-…`. */
  name: string;
  /** AWS account and region; without an account the stack is environment-agnostic. */
  account?: string;
  region: string;
  network: {
    /** Availability zones (spec: two private subnets, subnet-db-1 and subnet-db-2). */
    maxAzs: number;
    /** NAT gateways for the tasks' egress (AWS APIs, image pulls). */
    natGateways: number;
    cidr: string;
  };
  database: {
    engineVersion: string;
    engineMajorVersion: string;
    instanceClass: string;
    storageType: 'gp2' | 'gp3';
    allocatedStorageGb: number;
    maxAllocatedStorageGb: number;
    multiAz: boolean;
    backupRetentionDays: number;
    backupWindow: string;
    maintenanceWindow: string;
    performanceInsightsRetentionDays: number;
    monitoringIntervalSeconds: number;
    logExports: string[];
    /** log_min_duration_statement (the service's DB_SLOW_QUERY_MS). */
    slowStatementMs: number;
    databaseName: string;
    masterUsername: string;
    deletionProtection: boolean;
    /** Log group retention of the exported PostgreSQL log. */
    logRetentionDays: number;
  };
  replicas: {
    count: number;
    instanceClass: string;
    autoMinorVersionUpgrade: boolean;
    monitoringIntervalSeconds: number;
    /** read_replicas.scaling: the service's leader-only replica autoscaler. */
    autoscaling: {
      enabled: boolean;
      minReplicas: number;
      maxReplicas: number;
      cpuThresholdPercent: number;
      connectionsThresholdPercent: number;
    };
  };
  cache: {
    nodeType: string;
    engineVersion: string;
    parameterFamily: string;
    maxmemoryPolicy: string;
    /** Daily snapshots kept: ElastiCache's form of the spec's RDB persistence. */
    snapshotRetentionDays: number;
    snapshotWindow: string;
    maintenanceWindow: string;
  };
  pgbouncer: {
    image: string;
    cpu: number;
    memoryMiB: number;
    desiredCount: number;
    defaultPoolSize: number;
    minPoolSize: number;
    maxPoolSize: number;
    reservePoolSize: number;
    maxClientConn: number;
  };
  service: {
    /** A registry image (`repo:tag`); without it `cdk deploy` builds the Dockerfile. */
    image?: string;
    cpu: number;
    memoryMiB: number;
    desiredCount: number;
    port: number;
    logRetentionDays: number;
    /** CloudWatch namespace of the service's metrics (CLOUDWATCH_NAMESPACE). */
    metricsNamespace: string;
  };
  alarms: {
    /** alerting_system.notification_channels.email.addresses */
    emails: string[];
    /** Severities whose topic the email addresses subscribe to. */
    emailSeverities: string[];
    severities: string[];
  };
}

export const SPEC_DEFAULTS: Omit<EnvironmentConfig, 'name'> = {
  region: 'us-east-1',
  network: { maxAzs: 2, natGateways: 1, cidr: '10.40.0.0/16' },
  database: {
    engineVersion: '15.4',
    engineMajorVersion: '15',
    instanceClass: 'db.t3.medium',
    storageType: 'gp2',
    allocatedStorageGb: 100,
    maxAllocatedStorageGb: 500,
    multiAz: false,
    backupRetentionDays: 30,
    backupWindow: '03:00-04:00',
    maintenanceWindow: 'sun:04:00-sun:05:00',
    performanceInsightsRetentionDays: 7,
    monitoringIntervalSeconds: 60,
    logExports: ['postgresql'],
    slowStatementMs: 2000,
    databaseName: 'recipes',
    masterUsername: 'postgres',
    deletionProtection: true,
    logRetentionDays: 30,
  },
  replicas: {
    count: 1,
    instanceClass: 'db.t3.small',
    autoMinorVersionUpgrade: true,
    // backup_retention 7 of the spec: RDS has no automated backups of PostgreSQL read
    // replicas (docs/aws.md); the primary's 30 days cover the data
    monitoringIntervalSeconds: 300,
    autoscaling: {
      enabled: true,
      minReplicas: 1,
      maxReplicas: 2,
      cpuThresholdPercent: 70,
      connectionsThresholdPercent: 80,
    },
  },
  cache: {
    nodeType: 'cache.t3.micro',
    engineVersion: '7.0',
    parameterFamily: 'redis7',
    maxmemoryPolicy: 'allkeys-lru',
    snapshotRetentionDays: 1,
    snapshotWindow: '05:00-06:00',
    maintenanceWindow: 'sun:06:00-sun:07:00',
  },
  pgbouncer: {
    image: 'edoburu/pgbouncer:v1.26.0-p0',
    cpu: 256,
    memoryMiB: 512,
    desiredCount: 1,
    defaultPoolSize: 20,
    minPoolSize: 5,
    maxPoolSize: 50,
    reservePoolSize: 5,
    maxClientConn: 1000,
  },
  service: {
    cpu: 512,
    memoryMiB: 1024,
    desiredCount: 2,
    port: 3000,
    logRetentionDays: 30,
    metricsNamespace: 'DatabaseUnit',
  },
  alarms: {
    emails: ['admin@recipeapp.com'],
    emailSeverities: ['critical', 'high'],
    severities: ['critical', 'high', 'medium'],
  },
};

/** A partial override of any depth. */
export type Overrides<T> = {
  [K in keyof T]?: T[K] extends Array<unknown>
    ? T[K]
    : T[K] extends object
      ? Overrides<T[K]>
      : T[K];
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `base` with `over` laid on it (objects merged key by key, arrays and scalars replaced). */
export function merge<T>(base: T, over: unknown, path = ''): T {
  if (over === undefined) {
    return base;
  }
  if (!isPlainObject(base)) {
    return over as T;
  }
  if (!isPlainObject(over)) {
    throw new Error(`${path || 'environment'}: expected an object`);
  }
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (!(key in base)) {
      throw new Error(`${path ? `${path}.` : ''}${key}: not a setting (see infra/lib/config.ts)`);
    }
    out[key] = merge((base as Record<string, unknown>)[key], value, path ? `${path}.${key}` : key);
  }
  return out as T;
}

const NAME = /^[a-z][a-z0-9-]{0,19}$/;

/** Every environment of `file` (name → overrides), on the spec's defaults, checked. */
export function environments(file: Record<string, unknown>): EnvironmentConfig[] {
  return Object.entries(file).map(([name, over]) => {
    if (!NAME.test(name)) {
      throw new Error(`environment name ${name}: 1-20 lower-case letters, digits and dashes`);
    }
    const { account, ...rest } = (over ?? {}) as { account?: unknown };
    if (account !== undefined && (typeof account !== 'string' || !/^\d{12}$/.test(account))) {
      throw new Error(`${name}.account: a 12-digit AWS account id`);
    }
    const cfg: EnvironmentConfig = { name, ...merge(SPEC_DEFAULTS, rest, name) };
    if (account !== undefined) {
      cfg.account = account;
    }
    const { autoscaling } = cfg.replicas;
    if (autoscaling.minReplicas > autoscaling.maxReplicas) {
      throw new Error(`${name}.replicas.autoscaling: minReplicas above maxReplicas`);
    }
    if (
      cfg.replicas.count < autoscaling.minReplicas ||
      cfg.replicas.count > autoscaling.maxReplicas
    ) {
      throw new Error(`${name}.replicas.count: outside autoscaling.minReplicas..maxReplicas`);
    }
    if (cfg.database.maxAllocatedStorageGb < cfg.database.allocatedStorageGb) {
      throw new Error(`${name}.database.maxAllocatedStorageGb: below allocatedStorageGb`);
    }
    return cfg;
  });
}
