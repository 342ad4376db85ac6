import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import {
  appendFile,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import type { BackupConfig } from '../config/app-config.js';
import { asOsUser, pgbackrest } from './pgbackrest.cli.js';
import type { RecoveryTarget, RestoredInstance, ScratchInstance } from './backup.types.js';

const run = promisify(execFile);
const START_TIMEOUT_S = 3600;
const LOG_TAIL_LINES = 15;
/**
 * A Unix socket path is limited to 107 bytes, so the socket cannot live in the instance's
 * folder (a deep checkout such as `/check/work/main/.stack/backup-scratch/<name>` is too
 * long): it gets a short private folder under the OS temp dir, named in this file of the
 * instance's folder so that crash cleanup removes it too.
 */
const SOCKET_DIR_FILE = 'dbu_socket_dir';
const SOCKET_DIR_PREFIX = 'dbu-pg-';

/** Ports handed out by this process and not yet released (two restores at once). */
const reservedPorts = new Set<number>();

export class ScratchInstanceError extends Error {}

/** The scratch folder root, absolute (config may be relative to the working directory). */
export function scratchRoot(config: BackupConfig): string {
  return resolve(config.scratch.dir);
}

/** pgBackRest restore options for a target (set selection, type, target, action). */
export function restoreArgs(target: RecoveryTarget): string[] {
  const action = '--target-action=promote';
  switch (target.kind) {
    case 'backup':
      return target.lsn
        ? [
            `--set=${target.label}`,
            '--type=lsn',
            `--target=${target.lsn}`,
            '--target-exclusive',
            action,
          ]
        : [`--set=${target.label}`, '--type=immediate', action];
    case 'time':
      // pgBackRest wants `YYYY-MM-DD HH:MM:SS.mmm+00` (it rejects ISO 8601's T and Z).
      return ['--type=time', `--target=${pgTime(target.time)}`, action];
    case 'lsn':
      return ['--type=lsn', `--target=${target.lsn}`, action];
  }
}

export function pgTime(t: Date): string {
  return t.toISOString().replace('T', ' ').replace('Z', '+00');
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

async function freePort(config: BackupConfig): Promise<number> {
  const { from, to } = config.scratch.ports;
  for (let port = from; port <= to; port += 1) {
    if (!reservedPorts.has(port) && (await portFree(port))) {
      reservedPorts.add(port);
      return port;
    }
  }
  throw new ScratchInstanceError(`no free scratch port in ${from}-${to}`);
}

async function osUserIds(config: BackupConfig): Promise<{ uid: number; gid: number } | null> {
  const root = userInfo().uid === 0;
  if (!root || !config.osUser) {
    return null;
  }
  const { stdout: uid } = await run('id', ['-u', config.osUser]);
  const { stdout: gid } = await run('id', ['-g', config.osUser]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

async function asUser(
  config: BackupConfig,
  bin: string,
  args: string[],
  timeoutMs = 600_000,
): Promise<string> {
  const [file, argv] = asOsUser(config, bin, args);
  try {
    const { stdout } = await run(file, argv, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const out = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim() || e.message;
    throw new ScratchInstanceError(
      `${bin.split('/').pop() ?? bin} failed: ${out.split('\n').slice(-LOG_TAIL_LINES).join('\n')}`,
    );
  }
}

async function logTail(dir: string): Promise<string> {
  try {
    const text = await readFile(join(dir, 'log'), 'utf8');
    return text.trim().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no server log)';
  }
}

/** The socket folder named in a scratch folder, if it is one of ours; else null. */
function socketDirOf(dir: string): string | null {
  let socketDir: string;
  try {
    socketDir = readFileSync(join(dir, SOCKET_DIR_FILE), 'utf8').trim();
  } catch {
    return null;
  }
  return socketDir.startsWith(join(tmpdir(), SOCKET_DIR_PREFIX)) ? socketDir : null;
}

async function removeSocketDir(dir: string): Promise<void> {
  const socketDir = socketDirOf(dir);
  if (socketDir) {
    await rm(socketDir, { recursive: true, force: true });
  }
}

/**
 * The superuser over a scratch instance's own socket (local trust, as in the source
 * cluster), found from its folder: for instances this process did not start (a restore
 * served after a restart).
 */
export function scratchClientConfig(
  config: BackupConfig,
  dir: string,
  port: number | undefined,
  database: string,
): pg.ClientConfig {
  return { host: socketDirOf(dir) ?? dir, port, user: config.osUser ?? 'postgres', database };
}

/**
 * A throwaway PostgreSQL instance restored from the pgBackRest repository: its own folder
 * under BACKUP_SCRATCH_DIR, a free port from BACKUP_SCRATCH_PORTS, listening on 127.0.0.1
 * and on a socket in a short private folder under the OS temp dir, archive_mode off (it must never push WAL into the real
 * repository). `stop()` stops it and removes the folder.
 */
export class ScratchPostgres implements ScratchInstance, RestoredInstance {
  readonly host = '127.0.0.1';
  readyAt = new Date(0);
  private stopped = false;

  /** Crash cleanup finds it by its folder. */
  get ref(): string {
    return this.dir;
  }

  private constructor(
    private readonly config: BackupConfig,
    private readonly socketDir: string,
    readonly dir: string,
    readonly port: number,
    readonly restoreStartedAt: Date,
  ) {}

  /** Restores `target` into a new folder, starts the instance and waits until it is promoted. */
  static async create(
    config: BackupConfig,
    target: RecoveryTarget,
    opts: { name: string; onPrepared?: (dir: string, port: number) => Promise<void> },
  ): Promise<ScratchPostgres> {
    const restoreStartedAt = new Date();
    const root = scratchRoot(config);
    await mkdir(root, { recursive: true, mode: 0o755 });
    const ids = await osUserIds(config);
    if (ids) {
      await chown(root, ids.uid, ids.gid);
    }
    const port = await freePort(config);
    const dir = join(root, `${opts.name}-${randomBytes(3).toString('hex')}`);
    const socketDir = await mkdtemp(join(tmpdir(), SOCKET_DIR_PREFIX));
    const scratch = new ScratchPostgres(config, socketDir, dir, port, restoreStartedAt);
    try {
      await mkdir(dir, { mode: 0o700 });
      if (ids) {
        await chown(dir, ids.uid, ids.gid);
        await chown(socketDir, ids.uid, ids.gid);
      }
      await opts.onPrepared?.(dir, port);
      await pgbackrest(config, 'restore', [
        `--pg1-path=${dir}`,
        '--archive-mode=off',
        ...restoreArgs(target),
      ]);
      await appendFile(
        join(dir, 'postgresql.auto.conf'),
        [
          '',
          '# scratch instance (backup validation / point-in-time restore)',
          `port = ${port}`,
          `listen_addresses = '127.0.0.1'`,
          `unix_socket_directories = '${socketDir}'`,
          `archive_mode = off`,
          `archive_command = ''`,
          `synchronous_standby_names = ''`,
          `primary_conninfo = ''`,
          `shared_buffers = '64MB'`,
          // NOTE: max_connections, max_wal_senders, max_worker_processes, ... stay as
          // restored: recovery aborts when one is lower than on the source cluster.
          `logging_collector = off`,
          `hot_standby = on`,
          '',
        ].join('\n'),
      );
      await writeFile(join(dir, SOCKET_DIR_FILE), `${socketDir}\n`);
      await scratch.start();
      return scratch;
    } catch (err) {
      await scratch.stop().catch(() => undefined);
      throw err;
    }
  }

  private async start(): Promise<void> {
    const pgCtl = join(this.config.pgBin, 'pg_ctl');
    try {
      await asUser(
        this.config,
        pgCtl,
        ['-D', this.dir, '-l', join(this.dir, 'log'), '-w', '-t', String(START_TIMEOUT_S), 'start'],
        (START_TIMEOUT_S + 30) * 1000,
      );
    } catch (err) {
      throw new ScratchInstanceError(
        `the scratch instance did not start: ${(err as Error).message}\n--- server log ---\n${await logTail(this.dir)}`,
      );
    }
    const deadline = Date.now() + START_TIMEOUT_S * 1000;
    for (;;) {
      try {
        const rows = await this.query<{ r: boolean }>(
          'postgres',
          'SELECT pg_is_in_recovery() AS r',
        );
        if (!rows[0].r) {
          break;
        }
      } catch (err) {
        if (Date.now() > deadline) {
          throw err;
        }
      }
      if (!(await this.alive())) {
        throw new ScratchInstanceError(
          `the scratch instance stopped during recovery:\n${await logTail(this.dir)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new ScratchInstanceError('the scratch instance did not leave recovery in time');
      }
      await sleep(250);
    }
    this.readyAt = new Date();
  }

  /** The superuser over the instance's own socket (local trust, as in the source cluster). */
  clientConfig(database: string): pg.ClientConfig {
    return {
      host: this.socketDir,
      port: this.port,
      user: this.config.osUser ?? 'postgres',
      database,
    };
  }

  async connect(database: string): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig(database));
    await client.connect();
    return client;
  }

  async query<T>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
    const client = await this.connect(database);
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end();
    }
  }

  async alive(): Promise<boolean> {
    return pidAlive(this.dir);
  }

  /** Stops the server (fast, then immediate) without removing the folder (fault tests). */
  async halt(): Promise<void> {
    await stopServer(this.config, this.dir);
  }

  /** Starts it again after `halt()`. */
  async resume(): Promise<void> {
    await this.start();
  }

  logTail(): Promise<string> {
    return logTail(this.dir);
  }

  async stop(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    try {
      await stopServer(this.config, this.dir);
    } finally {
      await rm(this.dir, { recursive: true, force: true });
      await rm(this.socketDir, { recursive: true, force: true });
      reservedPorts.delete(this.port);
    }
  }
}

async function postmasterPid(dir: string): Promise<number | null> {
  try {
    const text = await readFile(join(dir, 'postmaster.pid'), 'utf8');
    const pid = Number(text.split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function pidAlive(dir: string): Promise<boolean> {
  const pid = await postmasterPid(dir);
  if (pid === null) {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** pg_ctl stop -m fast, then immediate; then SIGKILL of the postmaster if still there. */
export async function stopServer(config: BackupConfig, dir: string): Promise<void> {
  if (!(await pidAlive(dir))) {
    return;
  }
  const pgCtl = join(config.pgBin, 'pg_ctl');
  for (const mode of ['fast', 'immediate']) {
    try {
      await asUser(config, pgCtl, ['-D', dir, '-m', mode, '-w', '-t', '60', 'stop'], 90_000);
      return;
    } catch {
      if (!(await pidAlive(dir))) {
        return;
      }
    }
  }
  const pid = await postmasterPid(dir);
  if (pid !== null) {
    process.kill(pid, 'SIGKILL');
  }
}

/**
 * Removes scratch folders nobody owns: every folder under the scratch root whose name
 * starts with `prefix` (this service's database: services of other databases may share
 * the root) and is not in `keep` — its server (if running) is stopped first.
 */
export async function removeOrphanFolders(
  config: BackupConfig,
  prefix: string,
  keep: Set<string>,
): Promise<string[]> {
  const root = scratchRoot(config);
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const dir = join(root, name);
    if (!name.startsWith(prefix) || keep.has(dir) || !(await stat(dir)).isDirectory()) {
      continue;
    }
    await stopServer(config, dir);
    await removeSocketDir(dir);
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

/** Stops and removes one scratch folder (orphan of a crashed instance). */
export async function removeScratchDir(config: BackupConfig, dir: string): Promise<void> {
  const root = scratchRoot(config);
  if (!resolve(dir).startsWith(`${root}/`)) {
    throw new ScratchInstanceError(`refusing to remove ${dir}: not under ${root}`);
  }
  await stopServer(config, dir);
  await removeSocketDir(dir);
  await rm(dir, { recursive: true, force: true });
}
