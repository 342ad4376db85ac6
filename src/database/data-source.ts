import { SafeTypeOrmLogger } from './typeorm-logger.js';
import { Logger } from '@nestjs/common';
import type { DataSourceOptions } from 'typeorm';
import type { PostgresConnectionCredentialsOptions } from 'typeorm/driver/postgres/PostgresConnectionCredentialsOptions.js';
import type { AppConfig, NodeAddress } from '../config/app-config.js';
import { MIGRATIONS } from '../../migrations/index.js';
import { sslOption } from './pg-direct.js';

const poolLogger = new Logger('DatabasePool');

/** Where the one DataSource sends writes and reads; built from the discovered topology. */
export interface RouteTargets {
  writer: NodeAddress;
  replicas: NodeAddress[];
}

export interface BuiltTargets {
  /** Labels of `replication.slaves`, same order: what a read was served by. */
  readLabels: string[];
  writeLabel: string;
  options: DataSourceOptions;
}

/**
 * The one place DataSource options are built (Nest, the migration runner and the
 * TypeORM CLI all call it). `direct: true` skips PgBouncer: migrations and
 * session-level advisory locks need a real session. `writerOnly: true` gives a
 * plain (non-replicated) DataSource on the writer, for migrations. `asOwner: true`
 * connects as the schema's owner (DB_MIGRATION_USER) instead of the service's role.
 */
export function buildDataSourceOptions(
  config: AppConfig,
  targets: RouteTargets,
  opts: {
    direct?: boolean;
    writerOnly?: boolean;
    asOwner?: boolean;
    entities?: DataSourceOptions['entities'];
  } = {},
): BuiltTargets {
  const db = config.database;
  const viaPgBouncer = !opts.direct && db.routeViaPgBouncer && config.pgbouncer !== null;
  const creds = (address: NodeAddress, database: string): PostgresConnectionCredentialsOptions => ({
    host: address.host,
    port: address.port,
    username: opts.asOwner ? db.migrationUser : db.user,
    password: opts.asOwner ? db.migrationPassword : db.password,
    database,
    ssl: sslOption(db.ssl) as PostgresConnectionCredentialsOptions['ssl'],
    applicationName: 'database-unit',
  });

  let master: PostgresConnectionCredentialsOptions;
  let slaves: PostgresConnectionCredentialsOptions[];
  let readLabels: string[];
  let writeLabel: string;
  if (viaPgBouncer && config.pgbouncer) {
    const pgb = { host: config.pgbouncer.host, port: config.pgbouncer.port };
    master = creds(pgb, config.pgbouncer.dbRw);
    slaves = targets.replicas.length > 0 ? [creds(pgb, config.pgbouncer.dbRo)] : [];
    writeLabel = `pgbouncer/${config.pgbouncer.dbRw}`;
    readLabels = slaves.length > 0 ? [`pgbouncer/${config.pgbouncer.dbRo}`] : [];
  } else {
    master = creds(targets.writer, db.name);
    slaves = targets.replicas.map((r) => creds(r, db.name));
    writeLabel = `${targets.writer.host}:${targets.writer.port}`;
    readLabels = targets.replicas.map((r) => `${r.host}:${r.port}`);
  }

  const options: DataSourceOptions = {
    type: 'postgres',
    ...(opts.writerOnly
      ? master
      : {
          replication: {
            master,
            slaves,
            defaultMode: db.readDefault === 'primary' ? 'master' : 'slave',
          },
        }),
    entities: opts.entities ?? [],
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    migrationsRun: false,
    installExtensions: false,
    poolSize: opts.writerOnly ? 2 : db.pool.default,
    connectTimeoutMS: db.connectTimeoutMs,
    logging: ['error', 'warn', 'migration'],
    // 0 turns it off (TypeORM skips the check for a falsy value)
    maxQueryExecutionTime: db.slowQueryMs,
    logger: new SafeTypeOrmLogger(),
    poolErrorHandler: (err: Error) =>
      poolLogger.warn({ error: err.message }, 'pooled connection lost; the pool replaces it'),
    extra: {
      min: db.pool.min,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: db.connectTimeoutMs,
      // A hung node (SIGSTOP, dead link) must not hang requests forever.
      query_timeout: db.queryTimeoutMs,
    },
  };
  return { options, readLabels, writeLabel };
}
