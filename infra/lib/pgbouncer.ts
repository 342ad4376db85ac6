import type { EnvironmentConfig } from './config.js';

/**
 * pgbouncer.ini of the ECS service: the compose file's (docker/compose/pgbouncer.ini) with
 * the RDS endpoints and the spec's pool settings. No secret is in it: the start command
 * writes the auth_file, the admin/stats users and the TLS files from the task's secrets.
 */
export function pgbouncerIni(
  cfg: EnvironmentConfig,
  primaryHost: string,
  replicaHosts: string[],
  database: string,
): string {
  const p = cfg.pgbouncer;
  // PgBouncer ≥ 1.24 spreads a comma-separated host list round robin (spec: load_balancing)
  const readHosts = replicaHosts.length > 0 ? replicaHosts.join(',') : primaryHost;
  return [
    '[databases]',
    `${database} = host=${primaryHost} port=5432 dbname=${database}`,
    `${database}_ro = host=${readHosts} port=5432 dbname=${database} load_balance_hosts=round-robin`,
    `* = host=${primaryHost} port=5432`,
    '[pgbouncer]',
    'listen_addr = 0.0.0.0',
    'listen_port = 6432',
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    'auth_file = /run/pgbouncer/userlist.txt',
    'pool_mode = transaction',
    `default_pool_size = ${p.defaultPoolSize}`,
    `min_pool_size = ${p.minPoolSize}`,
    `reserve_pool_size = ${p.reservePoolSize}`,
    'reserve_pool_timeout = 3',
    `max_client_conn = ${p.maxClientConn}`,
    'max_db_connections = 0',
    'server_reset_query =',
    'server_check_query = select 1',
    'ignore_startup_parameters = extra_float_digits,options,statement_timeout,application_name',
    'server_connect_timeout = 10',
    'server_login_retry = 1',
    'query_wait_timeout = 30',
    'client_tls_sslmode = require',
    'client_tls_cert_file = /run/pgbouncer/server.crt',
    'client_tls_key_file = /run/pgbouncer/server.key',
    'client_tls_protocols = tlsv1.2,tlsv1.3',
    'server_tls_sslmode = verify-full',
    'server_tls_ca_file = /run/pgbouncer/ca.pem',
    'server_tls_protocols = tlsv1.2,tlsv1.3',
    'log_connections = 0',
    'log_disconnections = 0',
    'stats_period = 60',
    '%include /run/pgbouncer/users.ini',
    '',
  ].join('\n');
}

/**
 * The container's start: docker/compose/pgbouncer-entrypoint.sh's work (auth_file with the
 * passwords, admin/stats users) plus the ini and TLS files, all from the environment into
 * /run/pgbouncer (mode 600), then PgBouncer in the foreground.
 */
export const PGBOUNCER_START = [
  'set -eu',
  'umask 077',
  'mkdir -p /run/pgbouncer',
  'q() { printf \'"%s"\' "$(printf "%s" "$1" | sed \'s/"/""/g\')"; }',
  'printf "%s\\n" "$(q "$APP_DB_USER") $(q "$APP_DB_PASSWORD")" "$(q "$PGBOUNCER_ADMIN_USER") $(q "$PGBOUNCER_ADMIN_PASSWORD")" > /run/pgbouncer/userlist.txt',
  'printf "admin_users = %s\\nstats_users = %s\\n" "$PGBOUNCER_ADMIN_USER" "$APP_DB_USER" > /run/pgbouncer/users.ini',
  'printf "%s" "$PGBOUNCER_INI" > /run/pgbouncer/pgbouncer.ini',
  'printf "%s" "$TLS_CERT" > /run/pgbouncer/server.crt',
  'printf "%s" "$TLS_KEY" > /run/pgbouncer/server.key',
  'printf "%s" "$TLS_CA_BUNDLE" > /run/pgbouncer/ca.pem',
  'unset APP_DB_PASSWORD PGBOUNCER_ADMIN_PASSWORD TLS_KEY',
  'exec pgbouncer /run/pgbouncer/pgbouncer.ini',
].join('\n');

/** The service's start: the CA bundle (RDS + PgBouncer's CA) from its secret into a file. */
export const SERVICE_START = [
  'set -eu',
  'umask 077',
  'mkdir -p /tmp/dbu-tls',
  'printf "%s" "$DB_CA_BUNDLE" > /tmp/dbu-tls/ca.pem',
  'unset DB_CA_BUNDLE',
  'exec node dist/src/main.js',
].join('\n');
