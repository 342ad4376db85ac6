import type { BackupConfig } from '../config/app-config.js';
import { pgbackrest } from './pgbackrest.cli.js';
import type { RecoveryWindow } from './backup.types.js';

/** PostgreSQL's default WAL segment size (the stack and RDS use it). */
const SEGMENT_BYTES = 16n * 1024n * 1024n;
const SEGMENTS_PER_LOG = 0x100000000n / SEGMENT_BYTES;

/** One contiguous stretch that can be restored: from a backup's consistency point to the last WAL before a gap. */
export interface RecoverableRange {
  from: Date;
  to: Date;
  fromLsn: string;
  toLsn: string;
}

export interface DetailedRecoveryWindow extends RecoveryWindow {
  ranges: RecoverableRange[];
  /** Gaps with the times around them, for messages. */
  gapDetails: Array<{ afterWal: string; beforeWal: string; after: Date; before: Date }>;
  /** The newest restorable point (RPO is its age). */
  newest: Date | null;
}

interface InfoBackup {
  label: string;
  archive: { start: string; stop: string };
  lsn: { start: string; stop: string };
  timestamp: { start: number; stop: number };
  error?: boolean;
}

interface Segment {
  name: string;
  index: bigint;
  time: Date;
}

export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

export function bigIntToLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Position of a WAL file name (timeline ignored) in segments since 0/0. */
export function segmentIndex(walName: string): bigint {
  const log = BigInt(`0x${walName.slice(8, 16)}`);
  const seg = BigInt(`0x${walName.slice(16, 24)}`);
  return log * SEGMENTS_PER_LOG + seg;
}

/**
 * The recoverable window from a backup list and the archived segments: a range starts at
 * each backup's stop (the earliest consistent point) and runs over contiguous segments; a
 * missing segment ends it (a later backup starts a new one). Pure: unit-tested.
 */
export function computeWindow(backups: InfoBackup[], segments: Segment[]): DetailedRecoveryWindow {
  const segs = [...segments].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
  const byIndex = new Map(segs.map((s) => [s.index, s]));
  const gapDetails: DetailedRecoveryWindow['gapDetails'] = [];
  for (let i = 1; i < segs.length; i += 1) {
    // NOTE: the same position on two timelines (a restore or a promotion switched
    // timeline inside that segment) is no gap.
    if (segs[i].index > segs[i - 1].index + 1n) {
      gapDetails.push({
        afterWal: segs[i - 1].name,
        beforeWal: segs[i].name,
        after: segs[i - 1].time,
        before: segs[i].time,
      });
    }
  }
  const ranges: RecoverableRange[] = [];
  const good = backups.filter((b) => !b.error).sort((a, b) => a.timestamp.stop - b.timestamp.stop);
  for (const b of good) {
    const stopIdx = segmentIndex(b.archive.stop);
    if (!byIndex.has(stopIdx) || !byIndex.has(segmentIndex(b.archive.start))) {
      continue; // its own WAL is missing: not restorable
    }
    let last = stopIdx;
    while (byIndex.has(last + 1n)) {
      last += 1n;
    }
    const from = new Date(b.timestamp.stop * 1000);
    const to = byIndex.get(last)!.time;
    const toLsn = bigIntToLsn((last + 1n) * SEGMENT_BYTES);
    const prev = ranges[ranges.length - 1];
    if (prev && lsnToBigInt(prev.toLsn) === lsnToBigInt(toLsn)) {
      continue; // same stretch as an older backup's
    }
    ranges.push({ from, to: to < from ? from : to, fromLsn: b.lsn.stop, toLsn });
  }
  return {
    from: ranges[0]?.from ?? null,
    to: ranges[ranges.length - 1]?.to ?? null,
    gaps: gapDetails.map(({ afterWal, beforeWal }) => ({ afterWal, beforeWal })),
    gapDetails,
    ranges,
    newest: ranges[ranges.length - 1]?.to ?? null,
  };
}

/** Reads `pgbackrest info` and the archive listing of the current database (repo-ls). */
export async function recoveryWindow(config: BackupConfig): Promise<DetailedRecoveryWindow> {
  const [info] = JSON.parse(await pgbackrest(config, 'info', ['--output=json'])) as Array<{
    archive: Array<{ id: string; database: { id: number } }>;
    backup: Array<InfoBackup & { database: { id: number } }>;
    db: Array<{ id: number }>;
  }>;
  const dbId = Math.max(...info.db.map((d) => d.id));
  const archiveId = info.archive.find((a) => a.database.id === dbId)?.id;
  const backups = info.backup.filter((b) => b.database.id === dbId);
  const segments: Segment[] = [];
  if (archiveId) {
    const root = `archive/${config.pgbackrest.stanza}/${archiveId}`;
    const dirs = JSON.parse(
      await pgbackrest(config, 'repo-ls', ['--output=json'], { positional: [root] }),
    ) as Record<string, { type: string }>;
    for (const [dir, entry] of Object.entries(dirs)) {
      if (entry.type !== 'path' || dir === '.') {
        continue;
      }
      const files = JSON.parse(
        await pgbackrest(config, 'repo-ls', ['--output=json'], { positional: [`${root}/${dir}`] }),
      ) as Record<string, { type: string; time: number }>;
      for (const [file, f] of Object.entries(files)) {
        const m = /^([0-9A-F]{24})-[0-9a-f]{40}/.exec(file);
        if (f.type === 'file' && m) {
          segments.push({ name: m[1], index: segmentIndex(m[1]), time: new Date(f.time * 1000) });
        }
      }
    }
  }
  return computeWindow(backups, segments);
}

/** null when the target can be restored, else why not (naming the window and the gaps). */
export function refuseTarget(
  window: DetailedRecoveryWindow,
  target: { time?: Date; lsn?: string },
): string | null {
  const inRange = window.ranges.some((r) =>
    target.time
      ? target.time >= r.from && target.time <= r.to
      : lsnToBigInt(target.lsn!) >= lsnToBigInt(r.fromLsn) &&
        lsnToBigInt(target.lsn!) < lsnToBigInt(r.toLsn),
  );
  if (inRange) {
    return null;
  }
  const what = target.time ? target.time.toISOString() : target.lsn!;
  if (window.ranges.length === 0) {
    return `target ${what} is outside the recoverable window: no backup can be restored`;
  }
  const ranges = window.ranges
    .map((r) => `${r.from.toISOString()} .. ${r.to.toISOString()} (LSN ${r.fromLsn} .. ${r.toLsn})`)
    .join(', ');
  const gaps = window.gapDetails
    .map(
      (g) =>
        `WAL missing between ${g.afterWal} (${g.after.toISOString()}) and ${g.beforeWal} (${g.before.toISOString()})`,
    )
    .join('; ');
  return `target ${what} is outside the recoverable window ${ranges}${gaps ? `; archive gap: ${gaps}` : ''}`;
}
