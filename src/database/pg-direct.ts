import pg from 'pg';
import { MIN_TLS_VERSION } from '../common/tls.js';
import type { DatabaseConfig, DbTlsConfig, NodeAddress } from '../config/app-config.js';

/**
 * Short-lived direct connection to one node, for topology probes, health checks,
 * migrations' advisory lock and job leadership. Never used for application data
 * (that goes through the one DataSource).
 */
export function directClientConfig(
  db: DatabaseConfig,
  node: NodeAddress,
  opts: { timeoutMs?: number; applicationName?: string; noQueryTimeout?: boolean } = {},
): pg.ClientConfig {
  const timeout = opts.timeoutMs ?? db.connectTimeoutMs;
  return {
    host: node.host,
    port: node.port,
    user: db.user,
    password: db.password,
    database: db.name,
    ssl: sslOption(db.ssl),
    connectionTimeoutMillis: timeout,
    query_timeout: opts.noQueryTimeout ? undefined : timeout,
    application_name: opts.applicationName ?? 'database-unit',
  };
}

/** The libpq settings an `ssl` option stands for (for psql, pg_amcheck and the like). */
const LIBPQ_SETTINGS = new WeakMap<object, { sslmode: string; sslrootcert: string | null }>();

/**
 * node-postgres's `ssl` option for DB_SSL with libpq's meanings: `require` encrypts
 * (and, like libpq with a root certificate, checks the chain when a CA is given),
 * `verify-ca` checks the chain, `verify-full` the chain and the host name. Without a
 * CA, Node's trust store is used.
 */
export function sslOption(tls: DbTlsConfig): pg.ClientConfig['ssl'] {
  if (tls.mode === 'disable') {
    return false;
  }
  const ca = tls.ca ?? undefined;
  const skipName = { checkServerIdentity: (): undefined => undefined };
  let option: Exclude<pg.ClientConfig['ssl'], boolean | undefined>;
  switch (tls.mode) {
    case 'require':
      option = ca
        ? { ca, rejectUnauthorized: true, ...skipName, minVersion: MIN_TLS_VERSION }
        : { rejectUnauthorized: false, minVersion: MIN_TLS_VERSION };
      break;
    case 'verify-ca':
      option = { ca, rejectUnauthorized: true, ...skipName, minVersion: MIN_TLS_VERSION };
      break;
    case 'verify-full':
      option = { ca, rejectUnauthorized: true, minVersion: MIN_TLS_VERSION };
      break;
  }
  LIBPQ_SETTINGS.set(option, { sslmode: tls.mode, sslrootcert: tls.caFile });
  return option;
}

/**
 * PGSSLMODE / PGSSLROOTCERT for a libpq program connecting with the same TLS settings as
 * `ssl` (an option made by sslOption; anything else counts as verify-full).
 */
export function libpqSslEnv(ssl: pg.ClientConfig['ssl']): Record<string, string> {
  if (!ssl) {
    return { PGSSLMODE: 'disable' };
  }
  const known = typeof ssl === 'object' ? LIBPQ_SETTINGS.get(ssl) : undefined;
  if (!known) {
    return { PGSSLMODE: 'verify-full' };
  }
  return {
    PGSSLMODE: known.sslmode,
    ...(known.sslrootcert ? { PGSSLROOTCERT: known.sslrootcert } : {}),
  };
}

export function nodeName(node: NodeAddress): string {
  return `${node.host}:${node.port}`;
}

/** Runs `fn` on a fresh direct client and always closes it. */
export async function withDirectClient<T>(
  config: pg.ClientConfig,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(config);
  // NOTE: an error event on an idle client must not crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await closeWithin(client, END_TIMEOUT_MS);
  }
}

const END_TIMEOUT_MS = 1_000;

/**
 * `end()` waits for the server to close the socket: a hung server (SIGSTOP, a dead
 * link) never does, and a health check would never finish. Give it a moment, then
 * destroy the socket.
 */
export async function closeWithin(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = client.end().then(
    () => true,
    () => true,
  );
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const clean = await Promise.race([ended, timedOut]);
  clearTimeout(timer);
  if (!clean) {
    destroySocket(client);
  }
}

/** Closes a client's socket at once: a pool then drops the client instead of reusing it. */
export function destroySocket(client: pg.Client | pg.PoolClient): void {
  (
    client as unknown as { connection?: { stream?: { destroy(): void } } }
  ).connection?.stream?.destroy();
}
