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

export const CACHE_STRATEGIES = ['write_through', 'write_behind', 'cache_aside', 'none'] as const;
export type CacheStrategyName = (typeof CACHE_STRATEGIES)[number];

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

  // --- database -----------------------------------------------------------
  @IsNodeList()
  DB_NODES = '127.0.0.1:55432,127.0.0.1:55433';

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

  @IsIn(['disable', 'require', 'verify-full'])
  DB_SSL: 'disable' | 'require' | 'verify-full' = 'disable';

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
  @IsRedisUrl()
  REDIS_URL = 'redis://127.0.0.1:56379';

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
  VECTOR_EF_SEARCH_PER_RESULT = 4;

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

  @Transform(toNumber)
  @IsNumber()
  @Min(0)
  @Max(1)
  VECTOR_RECALL_SAMPLE_RATE = 0.01;

  @IsString()
  @Matches(/^\d+(kB|MB|GB)$/)
  VECTOR_MAINTENANCE_WORK_MEM = '256MB';

  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(64)
  VECTOR_PARALLEL_WORKERS = 4;

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
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  AUDIT_RETENTION_YEARS = 7;

  @IsString()
  @MinLength(9)
  AUDIT_MAINTENANCE_CRON = '0 15 3 * * *';

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

  // --- jobs -------------------------------------------------------------------------
  @Transform(toBool)
  @IsBoolean()
  JOBS_ENABLED = true;

  @IsString()
  @MinLength(9)
  JOB_CANARY_CRON = '*/30 * * * * *';
}
