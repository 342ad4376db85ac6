import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsUrl,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { IsApiKeyList, IsNodeList, IsRedisUrl } from './validators.js';
import { VECTOR_STORAGES, type VectorStorage } from '../recipes/vector-storage.js';

export const DB_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type DbSslMode = (typeof DB_SSL_MODES)[number];

export const CACHE_STRATEGIES = ['write_through', 'write_behind', 'cache_aside', 'none'] as const;
export type CacheStrategyName = (typeof CACHE_STRATEGIES)[number];

/** Values PutRetentionPolicy accepts. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
];

const SEVERITY_LIST = /^(critical|high|medium|low)(,(critical|high|medium|low))*$/;

const toBool = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') {
    return value;
  }
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) {
    return true;
  }
  if (['false', '0', 'no', 'off'].includes(v)) {
    return false;
  }
  return value;
};

const toNumber = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string' || value.trim() === '') {
    return value;
  }
  const n = Number(value.trim());
  return Number.isFinite(n) ? n : value;
};

const toInt = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string' || value.trim() === '') {
    return value;
  }
  return /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
};

/**
 * Every environment variable the service reads, with the spec's values as defaults.
 * Documented one by one in `.env.example` and the README.
 */
export class EnvironmentVariables {
  @IsIn(['development', 'production', 'test'])
  NODE_ENV: 'development' | 'production' | 'test' = 'development';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(65535)
  PORT = 3000;

  @IsString()
  HOST = '0.0.0.0';

  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL = 'info';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600_000)
  SHUTDOWN_DRAIN_MS = 5_000;

  /** JSON bodies nested deeper than this are refused with a 400 before they are parsed. */
  @Transform(toInt)
  @IsInt()
  @Min(4)
  @Max(1_000)
  HTTP_JSON_MAX_DEPTH = 32;

  /** JSON bodies with more object keys than this (all levels together) are refused with a 400. */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(1_000_000)
  HTTP_JSON_MAX_KEYS = 10_000;

  /**
   * GET /v1/recipes/:id answered from this instance's L1 cache in a Fastify hook, before
   * NestJS's pipeline (src/recipes/recipe-read.fast-path.ts); same answer either way.
   */
  @Transform(toBool)
  @IsBoolean()
  HTTP_FAST_PATH = true;

  /**
   * Answers carry a `Server-Timing` header: milliseconds per stage of the request (body
   * parsing, validation, cache lookups, database) and the total, for finding where a
   * request's time goes (bench:search reads it). Off by default: it shows internals.
   */
  @Transform(toBool)
  @IsBoolean()
  HTTP_SERVER_TIMING = false;

  /**
   * Browser origins allowed to call the API cross-origin (CORS), comma-separated, e.g.
   * `https://app.example.com,https://admin.example.com`. Empty (the default): CORS is
   * closed, no Access-Control-Allow-* header is sent and a preflight is refused.
   */
  @IsString()
  @Matches(/^$|^https?:\/\/[a-z0-9.-]+(:\d{1,5})?(,https?:\/\/[a-z0-9.-]+(:\d{1,5})?)*$/, {
    message:
      'HTTP_CORS_ORIGINS must be a comma-separated list of origins such as https://app.example.com (no wildcard, no path)',
  })
  HTTP_CORS_ORIGINS = '';

  // --- database -----------------------------------------------------------
  @IsNodeList()
  DB_NODES = '127.0.0.1:25432,127.0.0.1:25433';

  @IsString()
  @Matches(/^[A-Za-z0-9_]{1,63}$/)
  DB_NAME = 'recipes';

  @IsString()
  @MinLength(1)
  DB_USER = 'app';

  @ValidateIf(
    (o: EnvironmentVariables) => o.NODE_ENV === 'production' || o.DB_PASSWORD !== undefined,
  )
  @IsString()
  @MinLength(1)
  DB_PASSWORD?: string;

  /**
   * Owner of the schema: migrations run as it. The service's own role (DB_USER) gets
   * only the rights it needs (INSERT + SELECT on the audit log), so it must differ.
   */
  @IsString()
  @MinLength(1)
  DB_MIGRATION_USER = 'app_owner';

  /** Needed where migrations run (DB_MIGRATIONS_RUN, `npm run migration:run`). */
  @ValidateIf(
    (o: EnvironmentVariables) =>
      (o.NODE_ENV === 'production' && o.DB_MIGRATIONS_RUN) || o.DB_MIGRATION_PASSWORD !== undefined,
  )
  @IsString()
  @MinLength(1)
  DB_MIGRATION_PASSWORD?: string;

  /**
   * TLS to PostgreSQL and PgBouncer, with libpq's meanings: disable (clear text), require
   * (encrypted; with DB_SSL_CA the chain is checked, as libpq does with a root
   * certificate), verify-ca (chain checked against DB_SSL_CA), verify-full (chain and
   * host name). Applies to every connection the service and its CLIs open.
   */
  @IsIn(DB_SSL_MODES)
  DB_SSL: DbSslMode = 'verify-full';

  /**
   * PEM file of the CA(s) that sign the servers' certificates (RDS: the region's CA
   * bundle). Without it, the system's trust store.
   */
  @IsOptional()
  @IsString()
  @MinLength(1)
  DB_SSL_CA?: string;

  /**
   * Production refuses clear-text transport (DB_SSL=disable, `require` without a CA, a
   * plain redis:// URL) unless this is true; each boot then logs a warning.
   */
  @Transform(toBool)
  @IsBoolean()
  ALLOW_INSECURE_TRANSPORT = false;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600_000)
  DB_CONNECT_TIMEOUT_MS = 30_000;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  DB_BOOT_TIMEOUT_MS = 60_000;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  DB_POOL_DEFAULT = 20;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1000)
  DB_POOL_MIN = 5;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  DB_POOL_MAX = 50;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1000)
  DB_POOL_RESERVE = 5;

  @IsIn(['replica', 'primary'])
  DB_READ_DEFAULT: 'replica' | 'primary' = 'replica';

  @Transform(toBool)
  @IsBoolean()
  DB_MIGRATIONS_RUN = true;

  @Transform(toBool)
  @IsBoolean()
  DB_ROUTE_VIA_PGBOUNCER = false;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  DB_HEALTH_INTERVAL_MS = 30_000;

  @Transform(toInt)
  @IsInt()
  @Min(50)
  @Max(600_000)
  DB_HEALTH_TIMEOUT_MS = 10_000;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  DB_UNHEALTHY_THRESHOLD = 3;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  DB_HEALTHY_THRESHOLD = 2;

  /** Replicas further behind than this are skipped for reads (until they catch up). */
  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  DB_READ_MAX_LAG_SECONDS = 10;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  DB_READ_MAX_LAG_BYTES = 16_777_216;

  /** Client-side deadline of one statement on a pooled connection (a hung node cannot hang requests). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  DB_QUERY_TIMEOUT_MS = 30_000;

  /** Statements slower than this are logged as `slow query` (spec: slow_queries, duration > 2000); 0: off. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  DB_SLOW_QUERY_MS = 2000;

  // --- adaptive pool sizing (spec: connection_pooling.dynamic_scaling) -----------------
  /** 0 turns the controller off. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  DB_POOL_EVAL_INTERVAL_MS = 60_000;

  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(1)
  DB_POOL_SCALE_UP_THRESHOLD = 0.8;

  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(1)
  DB_POOL_SCALE_DOWN_THRESHOLD = 0.3;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  DB_POOL_SCALE_UP_STEP = 5;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  DB_POOL_SCALE_DOWN_STEP = 2;

  /** This instance's pools never exceed this share of a server's max_connections. */
  @Transform(toNumber)
  @IsNumber()
  @Min(0.01)
  @Max(1)
  DB_POOL_MAX_CONNECTIONS_SHARE = 0.5;

  /** Alert metric when waiting for a connection takes longer than this. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  DB_POOL_ALERT_WAIT_MS = 100;

  /** How long a mutating request's Idempotency-Key and its first result are kept. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  IDEMPOTENCY_TTL_HOURS = 24;

  // --- failover -----------------------------------------------------------------------
  @IsIn(['auto', 'manual', 'off'])
  FAILOVER_MODE: 'auto' | 'manual' | 'off' = 'auto';

  /** Only a replica at most this far behind the last known writer position is promoted. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  FAILOVER_MAX_LAG_BYTES = 1_048_576;

  /** Retry-After of the 503 that writes get while there is no writer. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  FAILOVER_RETRY_AFTER_S = 2;

  // --- pgbouncer (optional) -------------------------------------------------
  @IsOptional()
  @IsString()
  PGBOUNCER_HOST?: string;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(65535)
  PGBOUNCER_PORT = 6432;

  @IsString()
  @Matches(/^[A-Za-z0-9_]{1,63}$/)
  PGBOUNCER_DB_RW = 'recipes';

  @IsString()
  @Matches(/^[A-Za-z0-9_]{1,63}$/)
  PGBOUNCER_DB_RO = 'recipes_ro';

  @IsString()
  @MinLength(1)
  PGBOUNCER_ADMIN_USER = 'pgbouncer_admin';

  @IsOptional()
  @IsString()
  PGBOUNCER_ADMIN_PASSWORD?: string;

  // --- redis ------------------------------------------------------------------
  /** redis:// (clear text) or rediss:// (TLS, the certificate and host name verified). */
  @IsRedisUrl()
  REDIS_URL = 'rediss://127.0.0.1:26379';

  /** ACL user (ElastiCache RBAC user); credentials in REDIS_URL work too. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_USERNAME?: string;

  /** The ACL user's password or ElastiCache's AUTH token. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_PASSWORD?: string;

  /** PEM file of the CA that signs Redis's certificate (rediss:// only). */
  @IsOptional()
  @IsString()
  @MinLength(1)
  REDIS_TLS_CA?: string;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600_000)
  REDIS_CONNECT_TIMEOUT_MS = 5_000;

  // --- security -----------------------------------------------------------------
  @IsApiKeyList()
  API_KEYS = '[]';

  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(3_600_000)
  RATE_LIMIT_TTL_MS = 60_000;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000_000)
  RATE_LIMIT_LIMIT = 3_000;

  /**
   * Where the per-key counts live: `redis` (one budget for the whole fleet, each instance
   * counting alone while Redis is down) or `memory` (each instance its own budget).
   */
  @IsIn(['redis', 'memory'])
  RATE_LIMIT_STORE: 'redis' | 'memory' = 'redis';

  @Transform(toBool)
  @IsBoolean()
  METRICS_REQUIRE_KEY = false;

  // --- vector search (spec: vector_storage) ---------------------------------------
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  VECTOR_EF_SEARCH = 40;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(20)
  VECTOR_EF_SEARCH_PER_RESULT = 10;

  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(2)
  VECTOR_MAX_DISTANCE = 0.8;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  VECTOR_CANDIDATE_LIMIT = 50;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  VECTOR_RESULT_LIMIT = 20;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(600_000)
  VECTOR_QUERY_TIMEOUT_MS = 3_000;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(10_000_000)
  VECTOR_MAX_SCAN_TUPLES = 20_000;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(10_000_000)
  VECTOR_EXACT_MAX_ROWS = 2_000;

  // how long a filter set's plan choice (the bounded count) is reused; 0: count every time
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3_600)
  VECTOR_PLAN_MEMORY_S = 10;

  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(1)
  VECTOR_RECALL_SAMPLE_RATE = 0.01;

  /**
   * The share of time the sampled recall checks may take on an instance: a check that took
   * d ms lets the next one start d × (1 / share − 1) ms after it ends at the earliest. An
   * unfiltered check reads every embedding (about 2.5 s at 100,000 rows), so at a few
   * hundred searches a second 1 % would otherwise keep one running all the time.
   */
  @Transform(toNumber)
  @IsNumber()
  @Min(0.001)
  @Max(1)
  VECTOR_RECALL_CHECK_BUDGET = 0.05;

  @IsString()
  @Matches(/^\d+(kB|MB|GB)$/)
  VECTOR_MAINTENANCE_WORK_MEM = '1GB';

  // pgvector refuses ef_construction below 2 × m (m is 16)
  @Transform(toInt)
  @IsInt()
  @Min(32)
  @Max(1000)
  VECTOR_EF_CONSTRUCTION = 128;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  VECTOR_WITNESS_ROWS = 256;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(86_400)
  VECTOR_WITNESS_REFRESH_S = 60;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(256)
  VECTOR_WITNESS_STRATA = 32;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_000)
  VECTOR_WITNESS_STRATUM_ROWS = 128;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  VECTOR_ESCALATION_EF_SEARCH = 400;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(16)
  VECTOR_ESCALATION_EXACT_CONCURRENCY = 1;

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(64)
  VECTOR_PARALLEL_WORKERS = 4;

  @IsIn(VECTOR_STORAGES)
  VECTOR_STORAGE: VectorStorage = 'vector';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3_600)
  VECTOR_INDEX_REFRESH_S = 60;

  // --- embeddings provider (text search) -------------------------------------------
  @IsIn(['none', 'openai'])
  EMBEDDINGS_PROVIDER: 'none' | 'openai' = 'none';

  @ValidateIf((o: EnvironmentVariables) => o.EMBEDDINGS_PROVIDER === 'openai')
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  EMBEDDINGS_URL?: string;

  @IsString()
  @MinLength(1)
  EMBEDDINGS_MODEL = 'text-embedding-3-small';

  @IsOptional()
  @IsString()
  EMBEDDINGS_API_KEY?: string;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(120_000)
  EMBEDDINGS_TIMEOUT_MS = 5_000;

  // --- cache (spec: redis_cache, application_cache) --------------------------------
  @Transform(toBool)
  @IsBoolean()
  CACHE_ENABLED = true;

  @IsString()
  @Matches(/^[A-Za-z0-9]{1,16}$/)
  CACHE_KEY_VERSION = '1';

  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(68_719_476_736)
  CACHE_L1_MAX_BYTES = 104_857_600;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(2_592_000)
  CACHE_DEFAULT_TTL_S = 300;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(2_592_000)
  CACHE_USER_PROFILES_TTL_S = 3600;

  @IsIn(CACHE_STRATEGIES)
  CACHE_USER_PROFILES_STRATEGY: CacheStrategyName = 'write_through';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(2_592_000)
  CACHE_RECIPES_TTL_S = 1800;

  @IsIn(CACHE_STRATEGIES)
  CACHE_RECIPES_STRATEGY: CacheStrategyName = 'write_behind';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(2_592_000)
  CACHE_SEARCH_RESULTS_TTL_S = 900;

  @IsIn(CACHE_STRATEGIES)
  CACHE_SEARCH_RESULTS_STRATEGY: CacheStrategyName = 'cache_aside';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(2_592_000)
  CACHE_TASTE_PROFILES_TTL_S = 14400;

  @IsIn(CACHE_STRATEGIES)
  CACHE_TASTE_PROFILES_STRATEGY: CacheStrategyName = 'write_through';

  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(600_000)
  CACHE_WRITE_BEHIND_FLUSH_MS = 1_000;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3_600_000)
  CACHE_WRITE_BEHIND_CLAIM_IDLE_MS = 30_000;

  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(60_000)
  CACHE_REDIS_OP_TIMEOUT_MS = 250;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(1000)
  CACHE_CIRCUIT_FAILURE_THRESHOLD = 5;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600_000)
  CACHE_CIRCUIT_OPEN_MS = 5_000;

  // --- audit log (spec: audit_storage) -------------------------------------------------
  // The database refuses to drop audit partitions younger than 7 years (the spec's).
  @Transform(toInt)
  @IsInt()
  @Min(7)
  @Max(100)
  AUDIT_RETENTION_YEARS = 7;

  @IsString()
  @MinLength(9)
  AUDIT_MAINTENANCE_CRON = '0 15 3 * * *';

  // --- backups and recovery (spec: backup_system) --------------------------------------
  /** `pgbackrest` (self-managed clusters: the local stack, compose), `rds` (AWS), `off`. */
  @IsIn(['pgbackrest', 'rds', 'off'])
  BACKUP_PROVIDER: 'pgbackrest' | 'rds' | 'off' = 'pgbackrest';

  @IsString()
  @MinLength(1)
  BACKUP_PGBACKREST_CONFIG = '/etc/pgbackrest/pgbackrest.conf';

  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'must be a pgBackRest stanza name' })
  BACKUP_PGBACKREST_STANZA = 'dbu';

  @IsString()
  @MinLength(1)
  BACKUP_PGBACKREST_BIN = 'pgbackrest';

  /** When the service runs as root: run pgBackRest and scratch instances as this OS user. */
  @IsOptional()
  @Matches(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'must be an OS user name' })
  BACKUP_OS_USER?: string;

  /** PostgreSQL server binaries for scratch instances (validation, point-in-time restores). */
  @IsString()
  @MinLength(1)
  BACKUP_PG_BIN = '/usr/lib/postgresql/15/bin';

  /** Daily backups (differential) in the spec's 03:00–04:00 UTC window. */
  @IsString()
  @MinLength(9)
  BACKUP_DAILY_CRON = '0 0 3 * * *';

  /** Weekly backups (full), Sundays in the same window. */
  @IsString()
  @MinLength(9)
  BACKUP_WEEKLY_CRON = '0 30 3 * * 0';

  /** Monthly restore validation of the newest good backup (leader only). */
  @IsString()
  @MinLength(9)
  BACKUP_VALIDATION_CRON = '0 0 5 1 * *';

  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_DAILY_RETENTION_DAYS = 30;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_WEEKLY_RETENTION_WEEKS = 12;

  /** Scratch instances (validations, point-in-time restores) live under this folder. */
  @IsString()
  @MinLength(1)
  BACKUP_SCRATCH_DIR = '.data/backup-scratch';

  /** Ports for scratch instances, `FROM-TO` (keep it below the ephemeral range). */
  @Matches(/^\d{2,5}-\d{2,5}$/, { message: 'must look like 24100-24199' })
  BACKUP_SCRATCH_PORTS = '24100-24199';

  /** A point-in-time restore's scratch instance is removed this long after it is ready. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_RESTORE_TTL_MINUTES = 240;

  /** Recovery time objective (spec rto_target: 4 h). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_RTO_SECONDS = 14_400;

  /** Recovery point objective (spec rpo_target: 24 h). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_RPO_SECONDS = 86_400;

  /** performance_validation: a canonical query on the restored copy may take this many times the live replica's. */
  @Transform(toNumber)
  @IsNumber()
  @Min(1)
  BACKUP_PERF_TOLERANCE = 3;

  /** Alert backup_duration_long (spec: 120 min). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_DURATION_ALERT_MINUTES = 120;

  // --- BACKUP_PROVIDER=rds (AWS credentials: the SDK's default chain only) ----------------
  @Matches(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: 'must be an AWS region' })
  BACKUP_RDS_REGION = 'us-east-1';

  /** The source DB instance identifier (required with BACKUP_PROVIDER=rds). */
  @IsOptional()
  @Matches(/^[a-zA-Z][a-zA-Z0-9-]{0,62}$/, { message: 'must be an RDS DB instance identifier' })
  BACKUP_RDS_INSTANCE_ID?: string;

  /** Another endpoint speaking the RDS Query protocol (tests, LocalStack); empty = AWS. */
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  BACKUP_RDS_ENDPOINT?: string;

  /** Class of the temporary instances of validations and restores (spec test_environment). */
  @Matches(/^db\.[a-z0-9]+\.[a-z0-9]+$/, { message: 'must be an RDS instance class' })
  BACKUP_RDS_TEST_INSTANCE_CLASS = 'db.t3.small';

  /** Storage type of the temporary instances (spec test_environment: gp2). */
  @IsIn(['gp2', 'gp3', 'io1', 'io2', 'standard'])
  BACKUP_RDS_TEST_STORAGE_TYPE = 'gp2';

  /** DB subnet group of the temporary instances (empty: the account's default). */
  @IsOptional()
  @Matches(/^[a-zA-Z0-9 ._-]{1,255}$/, { message: 'must be a DB subnet group name' })
  BACKUP_RDS_SUBNET_GROUP?: string;

  /** Comma-separated VPC security group ids of the temporary instances. */
  @IsOptional()
  @Matches(/^sg-[0-9a-f]+(,sg-[0-9a-f]+)*$/, { message: 'must be sg-… ids, comma-separated' })
  BACKUP_RDS_SECURITY_GROUPS?: string;

  /** Automated backups the source instance must keep, days (spec primary_backups.retention). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  BACKUP_RDS_EXPECTED_RETENTION_DAYS = 30;

  /** Automated backup window the source instance must have, UTC (spec primary_backups.window). */
  @Matches(/^\d{2}:\d{2}-\d{2}:\d{2}$/, { message: 'must look like 03:00-04:00' })
  BACKUP_RDS_EXPECTED_WINDOW = '03:00-04:00';

  /** User the checks connect as on a temporary instance (the master user: amcheck needs it). */
  @IsString()
  @MinLength(1)
  BACKUP_RDS_DB_USER = 'postgres';

  /** Its password (the source's master password: a restored instance keeps it). */
  @IsOptional()
  @IsString()
  BACKUP_RDS_DB_PASSWORD?: string;

  /** How long to wait for a snapshot or a temporary instance to become available, minutes. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  BACKUP_RDS_WAIT_MINUTES = 120;

  /** Poll interval of those waits, ms. */
  @Transform(toInt)
  @IsInt()
  @Min(10)
  BACKUP_RDS_POLL_MS = 30_000;

  // --- replica autoscaling (spec read_replicas.scaling; docs/aws.md) ----------------------
  /** Add and remove read replicas on load, as a leader-only job (off unless true). */
  @Transform(toBool)
  @IsBoolean()
  REPLICA_AUTOSCALING_ENABLED = false;

  /**
   * `rds`: CreateDBInstanceReadReplica / DeleteDBInstance, load from CloudWatch.
   * `local`: `docker/stack.sh add-replica` / `drop-replica` on REPLICA_AUTOSCALING_LOCAL_PORTS,
   * load read from the replicas themselves (the local stack's demonstration).
   */
  @IsIn(['rds', 'local'])
  REPLICA_AUTOSCALING_PROVIDER: 'rds' | 'local' = 'rds';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(15)
  REPLICA_AUTOSCALING_MIN = 1;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(15)
  REPLICA_AUTOSCALING_MAX = 2;

  /** Scale out when the replicas' average CPU stays at or above this, % (spec cpu_threshold). */
  @Transform(toNumber)
  @IsNumber()
  @Min(1)
  @Max(100)
  REPLICA_AUTOSCALING_CPU_PERCENT = 70;

  /** …or their connections at or above this % of max_connections (spec connections_threshold). */
  @Transform(toNumber)
  @IsNumber()
  @Min(1)
  @Max(100)
  REPLICA_AUTOSCALING_CONNECTIONS_PERCENT = 80;

  /** Scale in when CPU stays below this, % … */
  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(100)
  REPLICA_AUTOSCALING_SCALE_IN_CPU_PERCENT = 30;

  /** … and connections below this % of max_connections. */
  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(100)
  REPLICA_AUTOSCALING_SCALE_IN_CONNECTIONS_PERCENT = 40;

  /** How long a scale-out threshold must hold, seconds (the spec's alarm duration). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_SCALE_OUT_SECONDS = 300;

  /** How long load must stay low before a replica is removed, seconds. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_SCALE_IN_SECONDS = 900;

  /** No scale-out sooner than this after a change, seconds. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  REPLICA_AUTOSCALING_SCALE_OUT_COOLDOWN_SECONDS = 600;

  /** No scale-in sooner than this after a change, seconds. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  REPLICA_AUTOSCALING_SCALE_IN_COOLDOWN_SECONDS = 1800;

  /** Evaluation interval, seconds (the leader's tick). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_INTERVAL_SECONDS = 60;

  /** First wait after a failed create or delete, seconds; doubled per failure. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_RETRY_SECONDS = 300;

  /** Longest wait between attempts after failures, seconds. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_RETRY_MAX_SECONDS = 3600;

  /** Denominator of the connections %: 0 = the writer's max_connections (a standby's is at least that). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  REPLICA_AUTOSCALING_MAX_CONNECTIONS = 0;

  /** The source (primary) DB instance identifier (default BACKUP_RDS_INSTANCE_ID). */
  @IsOptional()
  @Matches(/^[a-zA-Z][a-zA-Z0-9-]{0,62}$/, { message: 'must be an RDS DB instance identifier' })
  REPLICA_AUTOSCALING_RDS_INSTANCE_ID?: string;

  /** Class of the replicas it adds (spec read_replicas.instance_class). */
  @Matches(/^db\.[a-z0-9]+\.[a-z0-9]+$/, { message: 'must be an RDS instance class' })
  REPLICA_AUTOSCALING_INSTANCE_CLASS = 'db.t3.small';

  /** Identifier prefix of the replicas it adds (default `<source>-replica-auto`). */
  @IsOptional()
  @Matches(/^[a-zA-Z][a-zA-Z0-9-]{0,40}$/, { message: 'must be 1-41 letters, digits and dashes' })
  REPLICA_AUTOSCALING_ID_PREFIX?: string;

  /** Region of RDS and CloudWatch (default BACKUP_RDS_REGION). */
  @IsOptional()
  @Matches(/^[a-z]{2}(-[a-z]+)+-\d$/, { message: 'must be an AWS region' })
  REPLICA_AUTOSCALING_REGION?: string;

  /** Another endpoint speaking the RDS Query protocol (tests); empty = AWS. */
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  REPLICA_AUTOSCALING_RDS_ENDPOINT?: string;

  /** Another endpoint speaking CloudWatch's protocol (tests); empty = AWS. */
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  REPLICA_AUTOSCALING_CLOUDWATCH_ENDPOINT?: string;

  /**
   * Every instance (not only the leader) lists the source's replicas this often, seconds,
   * and adds the new ones to its topology (reads reach them once healthy and caught up).
   */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  REPLICA_AUTOSCALING_DISCOVERY_SECONDS = 30;

  /** `local` provider: ports of the replicas it may add, `FROM-TO` (below the ephemeral range). */
  @Matches(/^\d{2,5}-\d{2,5}$/, { message: 'must look like 25440-25443' })
  REPLICA_AUTOSCALING_LOCAL_PORTS = '25440-25443';

  /** `local` provider: CPUs the replicas share (CPU % = active sessions / this); 0 = this machine's. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  REPLICA_AUTOSCALING_LOCAL_VCPUS = 0;

  /** `local` provider: the stack (its STACK_DIR) the replicas are added to. */
  @IsString()
  @MinLength(1)
  REPLICA_AUTOSCALING_LOCAL_STACK_DIR = '.stack';

  /** `local` provider: the stack script. */
  @IsString()
  @MinLength(1)
  REPLICA_AUTOSCALING_LOCAL_STACK_SCRIPT = 'docker/stack.sh';

  // --- encryption (envelope: per-user data keys wrapped by a KMS) --------------------
  @IsIn(['local', 'aws'])
  KMS_PROVIDER: 'local' | 'aws' = 'local';

  /** Local provider: JSON file of master key versions (created in development when absent). */
  @IsString()
  @MinLength(1)
  KMS_LOCAL_KEY_FILE = '.data/kms/local-keys.json';

  /** Local provider: inline master keys `v1:<base64 32 bytes>,v2:...`; overrides the file. */
  @IsOptional()
  @Matches(/^v\d+:[A-Za-z0-9+/=]{43,44}(,v\d+:[A-Za-z0-9+/=]{43,44})*$/, {
    message: 'must be a list of v<N>:<base64 of 32 bytes>',
  })
  KMS_LOCAL_KEYS?: string;

  /** Local provider: the version new data keys are wrapped with (default: the highest). */
  @IsOptional()
  @Matches(/^v\d+$/, { message: 'must look like v2' })
  KMS_LOCAL_CURRENT_VERSION?: string;

  @ValidateIf((o: EnvironmentVariables) => o.KMS_PROVIDER === 'aws')
  @IsString()
  @MinLength(1)
  KMS_AWS_KEY_ID?: string;

  @IsString()
  KMS_AWS_REGION = 'us-east-1';

  /** Only for a non-AWS endpoint speaking the KMS protocol (tests, LocalStack). */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true })
  KMS_AWS_ENDPOINT?: string;

  /** Key of the keyed hashes (email lookup, erasure ledger): base64 of >= 32 bytes. */
  @ValidateIf(
    (o: EnvironmentVariables) => o.NODE_ENV === 'production' || o.PII_HASH_KEY !== undefined,
  )
  @Matches(/^[A-Za-z0-9+/=]{43,}$/, { message: 'must be base64 of at least 32 bytes' })
  PII_HASH_KEY?: string;

  @Transform(toNumber)
  @IsInt()
  @Min(0)
  DATA_KEY_CACHE_TTL_MS = 300_000;

  @Transform(toNumber)
  @IsInt()
  @Min(0)
  DATA_KEY_CACHE_MAX = 10_000;

  /** Database holding the wrapped per-user keys (default `<DB_NAME>_keystore`). */
  @IsOptional()
  @Matches(/^[a-z_][a-z0-9_]{0,62}$/, { message: 'must be a plain lower-case identifier' })
  KEYSTORE_DB_NAME?: string;

  /**
   * The keystore's own PostgreSQL (host:port). Production: a separate instance with a
   * short backup retention; unset = the application's writer (development only: its
   * backups and WAL archive then hold the keys too).
   */
  @IsOptional()
  @IsNodeList({ message: 'must be host:port' })
  KEYSTORE_DB_NODE?: string;

  @IsOptional()
  @IsString()
  KEYSTORE_DB_USER?: string;

  @IsOptional()
  @IsString()
  KEYSTORE_DB_PASSWORD?: string;

  // --- GDPR ---------------------------------------------------------------------------
  @IsString()
  @MinLength(1)
  GDPR_EXPORT_DIR = '.data/exports';

  @Transform(toNumber)
  @IsInt()
  @Min(1)
  GDPR_EXPORT_RETENTION_DAYS = 30;

  @Transform(toNumber)
  @IsInt()
  @Min(1)
  GDPR_DOWNLOAD_TOKEN_TTL_S = 900;

  @IsString()
  @MinLength(9)
  GDPR_EXPORT_PURGE_CRON = '0 45 3 * * *';

  @IsString()
  @MinLength(9)
  COMPLIANCE_REPORT_CRON = '0 0 5 1 * *';

  // --- monitoring -------------------------------------------------------------------
  /**
   * Seconds between samples of PostgreSQL (cluster-wide figures on the sampling leader),
   * Redis INFO and PgBouncer's pools; 0 turns the sampler off.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  MONITORING_DB_SAMPLE_SECONDS = 15;

  /** statement_timeout of the sampler's queries (and its deadline for Redis INFO). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  MONITORING_STATEMENT_TIMEOUT_MS = 2000;

  /**
   * CPUs of each database node, for dbu_db_cpu_utilization_percent (the
   * database_cpu_high alert beside a self-managed cluster): sessions running on a CPU,
   * sampled, averaged over a minute, divided by this. 0: unknown, no estimate (on RDS the
   * CloudWatch alarm reads CPUUtilization).
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(4096)
  MONITORING_DB_VCPUS = 0;

  // --- /dashboard -------------------------------------------------------------------
  /** Seconds between the dashboard's samples of the metrics registry; 0: no charts. */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600)
  DASHBOARD_SAMPLE_SECONDS = 5;

  /** Samples kept in memory per chart (720 × 5 s: the last hour). */
  @Transform(toInt)
  @IsInt()
  @Min(2)
  @Max(100_000)
  DASHBOARD_HISTORY_POINTS = 720;

  /** Lifetime of the dashboard's login cookie. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(10_080)
  DASHBOARD_SESSION_MINUTES = 480;

  // --- performance insights (spec: performance_insights) ------------------------------
  /**
   * Milliseconds between samples of pg_stat_activity for database load (average active
   * sessions), on the insights leader only; 0 turns the insights sampler off.
   */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  INSIGHTS_SAMPLE_INTERVAL_MS = 1000;

  /** Seconds between pg_stat_statements snapshots (top SQL is the delta between two). */
  @Transform(toInt)
  @IsInt()
  @Min(5)
  INSIGHTS_SNAPSHOT_SECONDS = 60;

  /** Days of insights history kept (spec: performance_insights.retention_period). */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  INSIGHTS_RETENTION_DAYS = 7;

  /** Statements stored per snapshot, the most time-consuming first: bounds the history. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(5000)
  INSIGHTS_MAX_STATEMENTS_PER_SNAPSHOT = 100;

  // --- jobs -------------------------------------------------------------------------
  @Transform(toBool)
  @IsBoolean()
  JOBS_ENABLED = true;

  @IsString()
  @MinLength(9)
  JOB_CANARY_CRON = '*/30 * * * * *';

  // --- CloudWatch (spec: monitoring_stack) ---------------------------------------------
  /** Publish the registry's metrics with PutMetricData (off unless true). */
  @Transform(toBool)
  @IsBoolean()
  CLOUDWATCH_ENABLED = false;

  @IsString()
  @Matches(/^[^:][^:]{0,254}$/, { message: 'must be 1-255 characters without a colon' })
  CLOUDWATCH_NAMESPACE = 'DatabaseUnit';

  @IsString()
  @MinLength(1)
  CLOUDWATCH_REGION = 'us-east-1';

  /** Only for a non-AWS endpoint speaking the CloudWatch protocols (tests, LocalStack). */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true })
  CLOUDWATCH_ENDPOINT?: string;

  /** Spec: detailed monitoring, one publish a minute. */
  @Transform(toNumber)
  @IsInt()
  @Min(1)
  @Max(3600)
  CLOUDWATCH_INTERVAL_SECONDS = 60;

  /** Datums kept while CloudWatch is unreachable; beyond it the oldest are dropped (counted). */
  @Transform(toNumber)
  @IsInt()
  @Min(1000)
  CLOUDWATCH_MAX_BACKLOG = 20_000;

  /** Attempts of one PutMetricData call (SDK standard retry: exponential backoff, jitter). */
  @Transform(toNumber)
  @IsInt()
  @Min(1)
  @Max(10)
  CLOUDWATCH_MAX_ATTEMPTS = 4;

  /** Value of the `environment` dimension (default: NODE_ENV). */
  @IsOptional()
  @Matches(/^[\w.-]{1,64}$/, { message: 'must be 1-64 letters, digits, _ . -' })
  CLOUDWATCH_ENVIRONMENT?: string;

  /** Log group of the service's JSON log lines (metric filters, retention). */
  @IsString()
  @Matches(/^[\w/.#-]{1,512}$/, { message: 'must be a CloudWatch Logs group name' })
  CLOUDWATCH_LOG_GROUP = '/database-unit/service';

  /** Spec: retention_period 30 days. */
  @Transform(toNumber)
  @IsIn(LOG_RETENTION_DAYS)
  CLOUDWATCH_LOG_RETENTION_DAYS = 30;

  /** SNS topic the provisioned alarms notify (alarm and OK). */
  @IsOptional()
  @Matches(/^arn:aws[\w-]*:sns:[\w-]+:\d{12}:[\w-]{1,256}$/, {
    message: 'must be an SNS topic ARN',
  })
  CLOUDWATCH_ALARM_TOPIC_ARN?: string;

  /** RDS DB instance identifiers for the dashboards' and alarms' AWS/RDS metrics. */
  @IsOptional()
  @Matches(/^[a-zA-Z][\w-]{0,62}(,[a-zA-Z][\w-]{0,62})*$/, {
    message: 'must be a comma-separated list of DB instance identifiers',
  })
  CLOUDWATCH_RDS_INSTANCES?: string;

  /** ElastiCache cache cluster ids for the cache dashboard's AWS/ElastiCache metrics. */
  @IsOptional()
  @Matches(/^[a-zA-Z][\w-]{0,49}(,[a-zA-Z][\w-]{0,49})*$/, {
    message: 'must be a comma-separated list of cache cluster ids',
  })
  CLOUDWATCH_ELASTICACHE_CLUSTERS?: string;

  // --- alerting (spec: alerting_system) ------------------------------------------------
  /** Evaluate the alert rules (on the monitoring leader) and deliver notifications. */
  @Transform(toBool)
  @IsBoolean()
  ALERTING_ENABLED = true;

  @Transform(toInt)
  @IsInt()
  @Min(100)
  ALERTING_EVAL_INTERVAL_MS = 15_000;

  /** JSON object of rules by name: overrides fields of the defaults, adds rules, `"enabled": false`. */
  @IsOptional()
  @IsString()
  ALERTING_RULES?: string;

  /** A firing alert is sent again after this long (0: never). */
  @Transform(toInt)
  @IsInt()
  @Min(0)
  ALERTING_RENOTIFY_MINUTES = 240;

  /** GET /v1/ops/alerts lists alerts resolved within this many hours. */
  @Transform(toInt)
  @IsInt()
  @Min(1)
  ALERTING_RECENT_HOURS = 24;

  /** How often the outbox is checked for due notifications; also the first retry's delay. */
  @Transform(toInt)
  @IsInt()
  @Min(50)
  ALERTING_DELIVERY_INTERVAL_MS = 5_000;

  /** Cap of the exponential backoff between attempts of one notification (never given up). */
  @Transform(toInt)
  @IsInt()
  @Min(50)
  ALERTING_DELIVERY_MAX_BACKOFF_MS = 300_000;

  /** Deadline of one delivery attempt (SMTP session, webhook call). */
  @Transform(toInt)
  @IsInt()
  @Min(100)
  ALERTING_DELIVERY_TIMEOUT_MS = 10_000;

  /** Spec: notification_channels.email.addresses (comma-separated). */
  @Matches(/^[^\s,@]+@[^\s,@]+(,[^\s,@]+@[^\s,@]+)*$/, {
    message: 'must be a comma-separated list of e-mail addresses',
  })
  ALERTING_EMAIL_TO = 'admin@recipeapp.com';

  @Matches(/^[^\s,@]+@[^\s,@]+$/, { message: 'must be an e-mail address' })
  ALERTING_EMAIL_FROM = 'database-unit@localhost';

  /** Spec: notification_channels.email.severity_levels. */
  @Matches(SEVERITY_LIST, {
    message: 'must be a comma-separated list of critical, high, medium, low',
  })
  ALERTING_EMAIL_SEVERITIES = 'critical,high';

  /** SMTP server of the e-mail channel; unset: no e-mail is sent. */
  @IsOptional()
  @Matches(/^[\w.-]{1,253}$/, { message: 'must be a host name or address' })
  ALERTING_SMTP_HOST?: string;

  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(65535)
  ALERTING_SMTP_PORT = 587;

  /** starttls: plain connection upgraded (required); tls: TLS from the start (465); none: tests only. */
  @IsIn(['starttls', 'tls', 'none'])
  ALERTING_SMTP_TLS: 'starttls' | 'tls' | 'none' = 'starttls';

  @IsOptional()
  @IsString()
  ALERTING_SMTP_USER?: string;

  /** Secret: never logged nor returned. */
  @IsOptional()
  @IsString()
  ALERTING_SMTP_PASSWORD?: string;

  /** Spec: notification_channels.slack.webhook_url (a secret); unset: no Slack message is sent. */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  SLACK_WEBHOOK_URL?: string;

  /** Spec: notification_channels.slack.channel. */
  @Matches(/^#?[\w.-]{1,80}$/, { message: 'must be a Slack channel name' })
  ALERTING_SLACK_CHANNEL = '#database-alerts';

  /** Spec: notification_channels.slack.severity_levels. */
  @Matches(SEVERITY_LIST, {
    message: 'must be a comma-separated list of critical, high, medium, low',
  })
  ALERTING_SLACK_SEVERITIES = 'critical,high,medium';
}
