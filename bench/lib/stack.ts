import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { testSsl } from '../../test/support/databases.js';
import { benchDatabase } from './paths.js';

const run = promisify(execFile);

export const BENCH_DB = benchDatabase('BENCH_SEARCH_DB', 'dbu_bench');

export interface StackEnv {
  /** the `export` lines of `docker/stack.sh env`, for child processes */
  vars: Record<string, string>;
  primary: NodeAddress;
  replica: NodeAddress;
  user: string;
  password: string;
  /** The schema's owner (migrations; creates the bench databases and their own tables). */
  ownerUser: string;
  ownerPassword: string;
  stackDir: string;
  /** TLS of the bench's own connections (the stack's DB_SSL / DB_SSL_CA). */
  ssl: pg.ClientConfig['ssl'];
}

export interface NodeAddress {
  host: string;
  port: number;
}

/** Reads `bash docker/stack.sh env` and finds which DB_NODES entry is the writer. */
export async function loadStackEnv(repoDir: string): Promise<StackEnv> {
  const { stdout } = await run('bash', ['docker/stack.sh', 'env'], { cwd: repoDir });
  const vars: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) {
      vars[m[1]] = m[2];
    }
  }
  const nodes = (vars.DB_NODES ?? '').split(',').map((n) => {
    const [host, port] = n.split(':');
    return { host, port: Number(port) };
  });
  if (nodes.length < 2) {
    throw new Error(`the bench needs a primary and a replica; DB_NODES=${vars.DB_NODES}`);
  }
  const user = vars.DB_USER;
  const password = vars.DB_PASSWORD;
  let primary: NodeAddress | undefined;
  let replica: NodeAddress | undefined;
  for (const node of nodes) {
    const c = new pg.Client({ ...node, user, password, database: 'postgres', ssl: testSsl(vars) });
    await c.connect();
    try {
      const { rows } = await c.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
      if (rows[0].standby) {
        replica ??= node;
      } else {
        primary ??= node;
      }
    } finally {
      await c.end();
    }
  }
  if (!primary || !replica) {
    throw new Error(
      'the stack must run one primary and one streaming replica (docker/stack.sh status)',
    );
  }
  return {
    vars,
    primary,
    replica,
    user,
    password,
    ownerUser: vars.DB_MIGRATION_USER,
    ownerPassword: vars.DB_MIGRATION_PASSWORD,
    stackDir: vars.STACK_DIR,
    ssl: testSsl(vars),
  };
}

export function clientConfig(
  env: StackEnv,
  node: NodeAddress,
  database = BENCH_DB,
): pg.ClientConfig {
  return {
    host: node.host,
    port: node.port,
    user: env.user,
    password: env.password,
    database,
    ssl: env.ssl,
    application_name: 'bench:search',
  };
}

/** As the schema's owner: creating a bench database (the service's role must not own it). */
export function ownerConfig(
  env: StackEnv,
  node: NodeAddress,
  database = BENCH_DB,
): pg.ClientConfig {
  return { ...clientConfig(env, node, database), user: env.ownerUser, password: env.ownerPassword };
}

/**
 * Creates `database` as the owner when missing; true when created. A database left
 * by a run from before the owner role belongs to the service's role: migrations (as
 * the owner) cannot run in it, so it has to go.
 */
export async function ensureOwnedDatabase(env: StackEnv, database: string): Promise<boolean> {
  return withClient(ownerConfig(env, env.primary, 'postgres'), async (c) => {
    const { rows } = await c.query<{ owner: string }>(
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
      [database],
    );
    if (rows[0]?.owner === env.user) {
      throw new Error(
        `${database} belongs to ${env.user} (made before the schema owner role): DROP DATABASE ${database}, then run again`,
      );
    }
    if (rows.length > 0) {
      return false;
    }
    await c.query(`CREATE DATABASE ${database} TEMPLATE template1`);
    return true;
  });
}

/** The stack's superuser over its unix socket (trust auth, local stack only). */
export function superuserConfig(
  env: StackEnv,
  node: NodeAddress,
  database = BENCH_DB,
): pg.ClientConfig {
  return {
    host: `${env.stackDir}/run`,
    port: node.port,
    user: 'postgres',
    database,
    application_name: 'bench:search',
  };
}

/**
 * A connected client whose connection errors (a node restarted under it) fail the
 * pending query instead of crashing the process as an unhandled 'error' event.
 */
export async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(config);
  c.on('error', (err) => {
    process.stderr.write(
      `[bench] connection to ${config.host}:${config.port} failed: ${err.message}\n`,
    );
  });
  await c.connect();
  return c;
}

export async function withClient<T>(
  config: pg.ClientConfig,
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const c = await connect(config);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
