import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO_ROOT = join(import.meta.dirname, '..', '..');
const SCRIPT = join(REPO_ROOT, 'docker', 'stack.sh');

export type StackNode = 'primary' | 'replica' | 'pgbouncer' | 'redis';

/** The stack's connection settings, as `docker/stack.sh env` prints them. */
export async function stackEnv(): Promise<Record<string, string>> {
  const { stdout } = await run('bash', [SCRIPT, 'env'], { cwd: REPO_ROOT });
  const env: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) {
      env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
    }
  }
  return env;
}

/** Stops, kills or starts a real node of the stack (fault tests). */
export async function stack(
  command: 'stop' | 'start' | 'kill' | 'restart',
  node: StackNode,
): Promise<string> {
  const { stdout } = await run('bash', [SCRIPT, command, node], {
    cwd: REPO_ROOT,
    timeout: 120_000,
  });
  return stdout;
}

export async function stackCommand(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('bash', [SCRIPT, ...args], { cwd: REPO_ROOT, timeout: 300_000 });
}

/**
 * A second, throwaway stack (own directory and ports) for destructive tests such as
 * failover: promotions and rejoins there never touch the shared stack.
 */
export class IsolatedStack {
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly dir: string,
    ports: { primary: number; replica: number; pgbouncer: number; redis: number },
  ) {
    this.env = {
      ...process.env,
      STACK_DIR: dir,
      STACK_PG_PRIMARY_PORT: String(ports.primary),
      STACK_PG_REPLICA_PORT: String(ports.replica),
      STACK_PGBOUNCER_PORT: String(ports.pgbouncer),
      STACK_REDIS_PORT: String(ports.redis),
      STACK_PG_SHARED_BUFFERS: '128MB',
    };
  }

  async run(...args: string[]): Promise<string> {
    const { stdout } = await run('bash', [SCRIPT, ...args], {
      cwd: REPO_ROOT,
      env: this.env,
      timeout: 300_000,
    });
    return stdout;
  }

  async settings(): Promise<Record<string, string>> {
    const out = await this.run('env');
    const env: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) {
        env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
      }
    }
    return env;
  }
}
