import pg from 'pg';
import type { PgBouncerConfig } from '../config/app-config.js';
import { closeWithin, sslOption } from './pg-direct.js';

/** SHOW POOLS summed over the service's two entries (PGBOUNCER_DB_RW / _RO). */
export interface PgBouncerPoolStats {
  clientsActive: number;
  clientsWaiting: number;
  /** Server connections in use, summed over the entries. */
  serversActive: number;
  /** The busiest entry's server connections in use (against default_pool_size, per entry). */
  serversActiveMaxPerPool: number;
  /** Longest current client wait (maxwait + maxwait_us). */
  maxWaitSeconds: number;
}

/** Runs `fn` on a connection to PgBouncer's admin console, and always closes it. */
export async function withPgBouncerAdmin<T>(
  pgb: PgBouncerConfig,
  timeoutMs: number,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({
    host: pgb.host,
    port: pgb.port,
    user: pgb.adminUser,
    password: pgb.adminPassword,
    database: 'pgbouncer',
    ssl: sslOption(pgb.ssl),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await closeWithin(client, 1_000);
  }
}

export async function readPoolStats(
  client: pg.Client,
  pgb: PgBouncerConfig,
): Promise<PgBouncerPoolStats> {
  const pools = await client.query<Record<string, string>>('SHOW POOLS');
  const ours = pools.rows.filter((r) => r.database === pgb.dbRw || r.database === pgb.dbRo);
  const sum = (key: string): number => ours.reduce((n, r) => n + Number(r[key] ?? 0), 0);
  return {
    clientsActive: sum('cl_active'),
    clientsWaiting: sum('cl_waiting'),
    serversActive: sum('sv_active'),
    serversActiveMaxPerPool: Math.max(0, ...ours.map((r) => Number(r.sv_active ?? 0))),
    maxWaitSeconds: Math.max(
      0,
      ...ours.map((r) => Number(r.maxwait ?? 0) + Number(r.maxwait_us ?? 0) / 1e6),
    ),
  };
}
