import { execFile } from 'node:child_process';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';
import type { BackupConfig } from '../config/app-config.js';

const run = promisify(execFile);

/** A pgBackRest command failed: its exit code and the last lines it printed (no secrets: the passphrase lives in the config file). */
export class PgBackRestError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(`pgbackrest ${command} failed (exit ${String(exitCode)}): ${output}`);
  }
}

/**
 * Runs `pgbackrest --config=… --stanza=… <command> [args]`, as `BACKUP_OS_USER` through
 * runuser when the service runs as root (pgBackRest must own the repository and read the
 * data directory as PostgreSQL's OS user). Arguments are passed as a list, never a shell.
 */
export async function pgbackrest(
  config: BackupConfig,
  command: string,
  args: string[] = [],
  opts: {
    timeoutMs?: number;
    positional?: string[];
    /** stdout holds secrets (a manifest's cipher passphrase): errors quote stderr only. */
    secretOutput?: boolean;
  } = {},
): Promise<string> {
  const argv = [
    `--config=${config.pgbackrest.config}`,
    `--stanza=${config.pgbackrest.stanza}`,
    ...args,
    command,
    // after the command: its operands (`repo-ls <path>`)
    ...(opts.positional ?? []),
  ];
  const [file, fullArgs] = asOsUser(config, config.pgbackrest.bin, argv);
  try {
    const { stdout } = await run(file, fullArgs, {
      timeout: opts.timeoutMs ?? 6 * 3600_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    const stdout = opts.secretOutput ? '' : (e.stdout ?? '');
    const output = `${e.stderr ?? ''}${stdout}`.trim().split('\n').slice(-10).join('\n');
    throw new PgBackRestError(command, typeof e.code === 'number' ? e.code : null, output);
  }
}

/** `[file, args]` that run `bin args` as `BACKUP_OS_USER` when we are root, else as ourselves. */
export function asOsUser(config: BackupConfig, bin: string, args: string[]): [string, string[]] {
  // NOTE: os.userInfo(), not process.getuid(): Jest's sandboxed `process` lacks getuid.
  const root = userInfo().uid === 0;
  if (root && config.osUser) {
    return ['runuser', ['-u', config.osUser, '--', bin, ...args]];
  }
  return [bin, args];
}
