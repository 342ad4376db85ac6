import type pg from 'pg';
import type { BackupConfig } from '../config/app-config.js';
import type {
  BackupProvider,
  ProviderBackup,
  RecoveryTarget,
  RecoveryWindow,
  RestoredInstance,
  RestoreOptions,
  SettingsDrift,
} from './backup.types.js';
import { BackupType } from './backup.types.js';
import { pgbackrest } from './pgbackrest.cli.js';
import { DetailedRecoveryWindow, recoveryWindow as detailedWindow } from './recovery-window.js';
import {
  removeOrphanFolders,
  removeScratchDir,
  scratchClientConfig,
  ScratchPostgres,
} from './scratch-instance.js';

/** The parts of `pgbackrest info --output=json` we read (one element per stanza). */
interface InfoStanza {
  name: string;
  archive?: Array<{ id: string; min: string | null; max: string | null }>;
  backup?: Array<{
    label: string;
    type: string;
    error?: boolean;
    timestamp: { start: number; stop: number };
    lsn?: { start?: string | null; stop?: string | null };
    info?: { size?: number; delta?: number; repository?: { size?: number; delta?: number } };
    reference?: string[] | null;
  }>;
}

const TYPES: Record<string, BackupType> = {
  full: BackupType.Full,
  diff: BackupType.Diff,
  incr: BackupType.Incr,
};

/** The segment `pgbackrest check` switched to and saw archived (null: none named). */
export function parseCheckedSegment(out: string): string | null {
  return /WAL segment ([0-9A-F]{24}) successfully archived/.exec(out)?.[1] ?? null;
}

/** Backup sets of `info --output=json`, oldest first (as pgBackRest lists them). */
export function parseInfo(json: string, stanza: string): ProviderBackup[] {
  const stanzas = JSON.parse(json) as InfoStanza[];
  const found = stanzas.find((s) => s.name === stanza);
  if (!found) {
    throw new Error(`pgbackrest info lists no stanza "${stanza}"`);
  }
  return (found.backup ?? [])
    .filter((b) => b.error !== true)
    .map((b) => {
      const type = TYPES[b.type];
      if (!type) {
        throw new Error(`pgbackrest info: backup ${b.label} has unknown type "${b.type}"`);
      }
      return {
        label: b.label,
        type,
        startedAt: new Date(b.timestamp.start * 1000),
        stoppedAt: new Date(b.timestamp.stop * 1000),
        startLsn: b.lsn?.start ?? null,
        stopLsn: b.lsn?.stop ?? null,
        // NOTE: `delta` is what this set itself holds (a diff's changed files); `size` is the
        // whole database it restores.
        sizeBytes: b.info?.size ?? null,
        repoSizeBytes: b.info?.repository?.delta ?? null,
        // read per set by checksum(): info does not print it
        checksum: null,
        references: b.reference ?? [],
      };
    });
}

/** `backrest-checksum` of a pgBackRest manifest's text. */
export function manifestChecksum(manifest: string, label: string): string {
  const m = /^backrest-checksum="([0-9a-f]{40})"$/m.exec(manifest);
  if (!m) {
    throw new Error(`the manifest of backup ${label} has no backrest-checksum`);
  }
  return m[1];
}

/** WAL segment name (24 hex digits) → [timeline, absolute segment number] for 16 MB segments. */
function segmentNumber(name: string): [number, bigint] {
  const tli = parseInt(name.slice(0, 8), 16);
  const log = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  return [tli, log * 0x100n + seg];
}

/**
 * Archived WAL segment names of `repo-ls --recurse --output=json` on the stanza's archive
 * (files `<segment>-<sha1>[.ext]`; `.backup`, `.history` and info files are skipped), sorted.
 */
export function parseArchiveListing(json: string): string[] {
  const entries = JSON.parse(json) as Record<string, { type: string }>;
  const names = new Set<string>();
  for (const [path, entry] of Object.entries(entries)) {
    const m = /(?:^|\/)([0-9A-F]{24})-[0-9a-f]{40}(?:\.[a-z0-9]+)?$/.exec(path);
    if (entry.type === 'file' && m) {
      names.add(m[1]);
    }
  }
  return [...names].sort();
}

/** Missing segments between consecutive archived ones of the same timeline. */
export function findGaps(segments: string[]): RecoveryWindow['gaps'] {
  const gaps: RecoveryWindow['gaps'] = [];
  for (let i = 1; i < segments.length; i += 1) {
    const [tliA, a] = segmentNumber(segments[i - 1]);
    const [tliB, b] = segmentNumber(segments[i]);
    if (tliA === tliB && b - a > 1n) {
      gaps.push({ afterWal: segments[i - 1], beforeWal: segments[i] });
    }
  }
  return gaps;
}

/** Self-managed clusters: pgBackRest over the stanza named in config (the local stack, compose). */
export class PgBackRestProvider implements BackupProvider {
  readonly name = 'pgbackrest' as const;

  constructor(private readonly config: BackupConfig) {}

  async backup(type: BackupType): Promise<ProviderBackup> {
    if (type === BackupType.Snapshot) {
      throw new Error('pgBackRest takes full, diff or incr backups, not snapshots');
    }
    const before = new Set((await this.list()).map((b) => b.label));
    // Retention from the service's config (the spec's): weekly fulls by age, one daily
    // differential per day; pgBackRest expires after the backup and keeps the WAL every
    // retained backup needs (point-in-time recovery back to the oldest one).
    const { weeklyWeeks, dailyDays } = this.config.retention;
    await pgbackrest(this.config, 'backup', [
      `--type=${type}`,
      '--repo1-retention-full-type=time',
      `--repo1-retention-full=${weeklyWeeks * 7}`,
      `--repo1-retention-diff=${dailyDays}`,
    ]);
    const created = (await this.list()).filter((b) => !before.has(b.label));
    if (created.length !== 1) {
      throw new Error(
        `pgbackrest backup finished but info lists ${created.length} new backup sets`,
      );
    }
    return { ...created[0], checksum: await this.checksum(created[0].label) };
  }

  /**
   * The SHA-1 that seals the set's manifest (`backrest-checksum`). The manifest also holds
   * the set's cipher passphrase: only this one line is kept, and the command's output is
   * never part of an error message.
   */
  async checksum(label: string): Promise<string> {
    const out = await pgbackrest(this.config, 'repo-get', [], {
      positional: [`backup/${this.config.pgbackrest.stanza}/${label}/backup.manifest`],
      secretOutput: true,
    });
    return manifestChecksum(out, label);
  }

  async list(): Promise<ProviderBackup[]> {
    const out = await pgbackrest(this.config, 'info', ['--output=json']);
    return parseInfo(out, this.config.pgbackrest.stanza);
  }

  /** From the oldest retained backup's start to the newest archived WAL segment's time. */
  async recoveryWindow(): Promise<RecoveryWindow> {
    const backups = await this.list();
    const out = await pgbackrest(this.config, 'repo-ls', ['--recurse', '--output=json'], {
      positional: [`archive/${this.config.pgbackrest.stanza}`],
    });
    const entries = JSON.parse(out) as Record<string, { type: string; time?: number }>;
    let newest = 0;
    for (const entry of Object.values(entries)) {
      if (entry.type === 'file' && entry.time !== undefined) {
        newest = Math.max(newest, entry.time);
      }
    }
    return {
      from: backups[0]?.startedAt ?? null,
      to: backups.length > 0 && newest > 0 ? new Date(newest * 1000) : null,
      gaps: findGaps(parseArchiveListing(out)),
    };
  }

  detailedWindow(): Promise<DetailedRecoveryWindow> {
    return detailedWindow(this.config);
  }

  /** A scratch instance on this machine (`pgbackrest restore` into its own folder). */
  restore(target: RecoveryTarget, opts: RestoreOptions): Promise<RestoredInstance> {
    return ScratchPostgres.create(this.config, target, {
      name: opts.name,
      onPrepared: (dir) => opts.onPrepared?.(dir) ?? Promise.resolve(),
    });
  }

  /** The superuser over the scratch instance's socket (`ref` is its folder). */
  connectionFor(
    ref: string,
    _host: string | null,
    port: number | null,
    database: string,
  ): pg.ClientConfig {
    return scratchClientConfig(this.config, ref, port ?? undefined, database);
  }

  removeRestored(ref: string): Promise<void> {
    return removeScratchDir(this.config, ref);
  }

  removeOrphans(prefix: string, keep: Set<string>): Promise<string[]> {
    return removeOrphanFolders(this.config, prefix, keep);
  }

  /**
   * `pgbackrest verify` of one backup set (checksums of every file in the repository): the
   * restore itself only says "data corruption detected", verify names the file.
   */
  async verify(label: string): Promise<{ ok: boolean; problems: string[] }> {
    const out = await pgbackrest(this.config, 'verify', [
      `--set=${label}`,
      '--log-level-console=info',
    ]);
    const problems = out
      .split('\n')
      .filter((l) =>
        /INFO: (invalid|missing)|checksum invalid|status: error|status: invalid/.test(l),
      )
      .map((l) => l.replace(/^.*INFO: /, '').trim());
    return { ok: problems.length === 0, problems };
  }

  /**
   * `pgbackrest check`: switches the WAL segment on the primary (a standby is only checked)
   * and waits until the archive holds it (pgBackRest's archive-timeout, 60 s by default).
   */
  async archiveNow(): Promise<string | null> {
    const out = await pgbackrest(this.config, 'check', ['--log-level-console=info'], {
      timeoutMs: 180_000,
    });
    return parseCheckedSegment(out);
  }

  /** Retention is passed to pgBackRest on every backup: nothing can drift. */
  checkSettings(): Promise<SettingsDrift[]> {
    return Promise.resolve([]);
  }
}
