import { Logger } from '@nestjs/common';
import { join } from 'node:path';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../src/app.module.js';
import { configureApp, FASTIFY_OPTIONS } from '../../src/app.setup.js';
import { createPino, PinoLoggerService } from '../../src/common/logger.js';
import { AppConfig, loadConfig } from '../../src/config/app-config.js';
import { hashSecret } from '../../src/security/api-key.service.js';
import type { ApiScope } from '../../src/security/scopes.js';
import { API_SCOPES } from '../../src/security/scopes.js';

/** Test keys: `all` carries every scope, `none` carries none, others one each. */
export const KEYS = {
  all: 'test-key-all-scopes',
  opsRead: 'test-key-ops-read',
  none: 'test-key-no-scopes',
} as const;

export const API_KEYS_JSON = JSON.stringify([
  { id: 'test-all', hash: hashSecret(KEYS.all), scopes: [...API_SCOPES] },
  {
    id: 'test-ops-read',
    hash: hashSecret(KEYS.opsRead),
    scopes: ['ops:read'] satisfies ApiScope[],
  },
  { id: 'test-none', hash: hashSecret(KEYS.none), scopes: [] },
]);

export function bearer(key: string): { authorization: string } {
  return { authorization: `Bearer ${key}` };
}

export function testConfig(
  env: Record<string, string>,
  database: string,
  overrides: Record<string, string> = {},
): AppConfig {
  return loadConfig({
    ...env,
    NODE_ENV: 'test',
    DB_NAME: database,
    API_KEYS: API_KEYS_JSON,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    DB_MIGRATIONS_RUN: 'false',
    JOBS_ENABLED: 'false',
    // Tests that stop the shared stack's primary must not promote its replica.
    FAILOVER_MODE: 'off',
    // Pool control off unless a test turns it on: it would resize the shared PgBouncer.
    DB_POOL_EVAL_INTERVAL_MS: '0',
    // Insights collector off unless a test turns it on: it writes history rows every minute.
    INSIGHTS_SAMPLE_INTERVAL_MS: '0',
    // TEST_VIA_PGBOUNCER=1: every query goes through PgBouncer in transaction pooling
    // (its `*` entry serves any test database; reads then use the primary behind it).
    ...(process.env.TEST_VIA_PGBOUNCER === '1'
      ? { DB_ROUTE_VIA_PGBOUNCER: 'true', PGBOUNCER_DB_RW: database, PGBOUNCER_DB_RO: database }
      : {}),
    DB_HEALTH_TIMEOUT_MS: '2000',
    DB_HEALTH_INTERVAL_MS: '1000',
    SHUTDOWN_DRAIN_MS: '0',
    // Scratch instances (backup validation, restores) live inside the stack's folder; the
    // port range can be moved per worktree like the stack's own ports.
    ...(env.STACK_DIR ? { BACKUP_SCRATCH_DIR: join(env.STACK_DIR, 'backup-scratch') } : {}),
    ...(process.env.BACKUP_SCRATCH_PORTS
      ? { BACKUP_SCRATCH_PORTS: process.env.BACKUP_SCRATCH_PORTS }
      : {}),
    ...overrides,
  });
}

/** Boots the real AppModule on the real stack, configured exactly as main.ts does. */
export async function bootApp(config: AppConfig): Promise<NestFastifyApplication> {
  Logger.overrideLogger(new PinoLoggerService(createPino(config.logLevel)));
  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot(config)],
  }).compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(
    new FastifyAdapter(FASTIFY_OPTIONS),
    {
      logger: new PinoLoggerService(createPino(config.logLevel)),
    },
  );
  await configureApp(app, { docsUi: false });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}
