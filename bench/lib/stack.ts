import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export const BENCH_DB = 'dbu_bench';

export interface StackEnv {
  /** the `export` lines of `docker/stack.sh env`, for child processes */
  vars: Record<string, string>;
  primary: NodeAddress;
  replica: NodeAddress;
  user: string;
  password: string;
  stackDir: string;
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
    const c = new pg.Client({ ...node, user, password, database: 'postgres' });
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
  return { vars, primary, replica, user, password, stackDir: vars.STACK_DIR };
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
    application_name: 'bench:search',
  };
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
