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
