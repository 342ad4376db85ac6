import pg from 'pg';
import type { DatabaseConfig, NodeAddress } from '../config/app-config.js';

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

export function sslOption(mode: DatabaseConfig['ssl']): pg.ClientConfig['ssl'] {
  switch (mode) {
    case 'disable':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-full':
      return { rejectUnauthorized: true };
  }
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
