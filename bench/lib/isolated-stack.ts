import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A throwaway stack of a benchmark's own (`docker/stack.sh` with its own directory and
 * ports), for scenarios that promote, kill or add nodes: the shared stack is untouched.
 */
export class BenchStack {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly repoDir: string,
    name: string,
    ports: { primary: number; replica: number; pgbouncer: number; redis: number },
    sharedBuffers = '128MB',
  ) {
    this.dir = path.join(repoDir, '.stack', name);
    this.env = {
      ...process.env,
      STACK_DIR: this.dir,
      STACK_PG_PRIMARY_PORT: String(ports.primary),
      STACK_PG_REPLICA_PORT: String(ports.replica),
      STACK_PGBOUNCER_PORT: String(ports.pgbouncer),
      STACK_REDIS_PORT: String(ports.redis),
      STACK_PG_SHARED_BUFFERS: sharedBuffers,
    };
  }

  async run(...args: string[]): Promise<string> {
    const { stdout } = await run('bash', ['docker/stack.sh', ...args], {
      cwd: this.repoDir,
      env: this.env,
      timeout: 300_000,
    });
    return stdout;
  }

  /** The `export` lines of `docker/stack.sh env`. */
  async vars(): Promise<Record<string, string>> {
    const vars: Record<string, string> = {};
    for (const line of (await this.run('env')).split('\n')) {
      const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) {
        vars[m[1]] = m[2];
      }
    }
    return vars;
  }
}
