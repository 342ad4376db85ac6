import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DbSslMode } from '../../src/config/env.schema.js';
import { sslOption } from '../../src/database/pg-direct.js';

export const TEMPLATE_DB = 'dbu_test_template';

export interface StackDb {
  host: string;
  primaryPort: number;
  replicaPort: number;
  /** The service's role (DB_USER). */
  user: string;
  password: string;
  /** The schema's owner, which migrations run as (DB_MIGRATION_USER). */
  ownerUser: string;
  ownerPassword: string;
  /** node-postgres's TLS option for the stack (DB_SSL / DB_SSL_CA of its env). */
  ssl: pg.ClientConfig['ssl'];
}

/**
 * The `ssl` option of a test's own connections, from the stack's DB_SSL and DB_SSL_CA:
 * the stack accepts TCP connections over TLS only.
 */
export function testSsl(env: Record<string, string | undefined>): pg.ClientConfig['ssl'] {
  const caFile = env.DB_SSL_CA || null;
  return sslOption({
    mode: (env.DB_SSL ?? 'disable') as DbSslMode,
    caFile,
    ca: caFile ? readFileSync(caFile, 'utf8') : null,
  });
}

export function stackDb(env: Record<string, string>): StackDb {
  const [primary, replica] = env.DB_NODES.split(',');
  return {
    host: primary.split(':')[0],
    primaryPort: Number(primary.split(':')[1]),
    replicaPort: Number(replica.split(':')[1]),
    user: env.DB_USER,
    password: env.DB_PASSWORD,
    ownerUser: env.DB_MIGRATION_USER,
    ownerPassword: env.DB_MIGRATION_PASSWORD,
    ssl: testSsl(env),
  };
}

export function assertTestDatabase(name: string): void {
  if (!name.includes('test')) {
    throw new Error(`refusing to run tests against database "${name}": its name lacks "test"`);
  }
}

/** A connected client as the service's role (DB_USER) on `port`; the caller ends it. */
export async function serviceClient(
  db: StackDb,
  port: number,
  database: string,
): Promise<pg.Client> {
  const client = new pg.Client({
    host: db.host,
    port,
    user: db.user,
    password: db.password,
    database,
    ssl: db.ssl,
  });
  await client.connect();
  return client;
}

/** One query as the service's role (DB_USER): what the service itself may do. */
export function adminQuery(
  db: StackDb,
  port: number,
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult> {
  return queryAs({ user: db.user, password: db.password }, db, port, database, sql, params);
}

/** One query as the schema's owner (DB_MIGRATION_USER): test databases, audit partitions. */
export function ownerQuery(
  db: StackDb,
  port: number,
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult> {
  return queryAs(
    { user: db.ownerUser, password: db.ownerPassword },
    db,
    port,
    database,
    sql,
    params,
  );
}

async function queryAs(
  role: { user: string; password: string },
  db: StackDb,
  port: number,
  database: string,
  sql: string,
  params: unknown[],
): Promise<pg.QueryResult> {
  const client = new pg.Client({ host: db.host, port, ...role, database, ssl: db.ssl });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/**
 * A fresh database for one test file, copied from the migrated template, and
 * present on the replica before the tests start. The owner role creates it: the
 * service's role must own neither the database nor its schema.
 */
export async function createTestDatabase(
  db: StackDb,
  label: string,
  opts: { exactName?: string } = {},
): Promise<string> {
  // The jest process's pid in the name: the global teardown drops this run's databases and
  // those of runs that died, never those of another run still going (support/global-teardown.mjs).
  const name =
    opts.exactName ??
    `dbu_test_r${process.pid}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(3).toString('hex')}`;
  assertTestDatabase(name);
  if (opts.exactName) {
    await ownerQuery(
      db,
      db.primaryPort,
      'postgres',
      `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`,
    );
  }
  await ownerQuery(
    db,
    db.primaryPort,
    'postgres',
    `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`,
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await adminQuery(db, db.replicaPort, name, 'SELECT 1');
      return name;
    } catch (err) {
      if (Date.now() > deadline) {
        throw err;
      }
      await sleep(100);
    }
  }
}

export async function dropTestDatabase(db: StackDb, name: string): Promise<void> {
  assertTestDatabase(name);
  await ownerQuery(db, db.primaryPort, 'postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  // The app creates its keystore database next to it (KEYSTORE_DB_NAME default), as its own role.
  await adminQuery(
    db,
    db.primaryPort,
    'postgres',
    `DROP DATABASE IF EXISTS ${name}_keystore WITH (FORCE)`,
  );
}

/** A query as the superuser `postgres` over the stack's unix socket (pg_wal_replay_pause, ...). */
export async function superQuery(
  env: Record<string, string>,
  port: number,
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<pg.QueryResult> {
  const client = new pg.Client({ host: `${env.STACK_DIR}/run`, port, user: 'postgres', database });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/** Rows a PITR test wrote before and after its target, as a restored copy holds them. */
export async function pitrRowCounts(client: pg.Client): Promise<{ before: number; after: number }> {
  const res = await client.query<{ before: number; after: number }>(
    `SELECT count(*) FILTER (WHERE title LIKE 'pitr-before %')::int AS before,
            count(*) FILTER (WHERE title LIKE 'pitr-after %')::int AS after FROM recipes`,
  );
  return res.rows[0];
}
