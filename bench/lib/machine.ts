import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import { log } from './progress.js';
import { round } from './stats.js';

const execFileAsync = promisify(execFile);

/** What every benchmark report says about the machine it ran on. */
export async function hostInfo(repoDir: string): Promise<Record<string, unknown>> {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = (
      await execFileAsync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoDir })
    ).stdout.trim();
  } catch (err) {
    log(`git rev-parse failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {
    hostname: os.hostname(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: { count: cpus.length, model: cpus[0]?.model, speedMHz: cpus[0]?.speed },
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    commit,
  };
}
