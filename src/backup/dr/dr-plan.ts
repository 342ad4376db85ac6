import type { ProviderBackup } from '../backup.types.js';
import type { DetailedRecoveryWindow, RecoverableRange } from '../recovery-window.js';
import { lsnToBigInt, refuseTarget } from '../recovery-window.js';
import { pgTime } from '../scratch-instance.js';

/** Where the disaster recovery restores to. */
export type DrTarget =
  { kind: 'time'; time: Date } | { kind: 'lsn'; lsn: string } | { kind: 'latest' };

export interface DrOptions {
  /** null with `validateOnly`: nothing is restored. */
  target: DrTarget | null;
  dryRun: boolean;
  /** Only validation and the erasure ledger, on the nodes DB_NODES names (e.g. after an RDS restore). */
  validateOnly: boolean;
}

/** Bad command line: exit 2 with the usage. */
export class DrUsageError extends Error {}

/** The target cannot be restored from what the repository holds: exit 3, nothing changed. */
export class DrRefusedError extends Error {}

export const DR_USAGE =
  'usage: npm run dr:restore -- (--target-time ISO-8601 | --target-lsn LSN | --latest) [--dry-run]\n       npm run dr:restore -- --validate-only';

const LSN_RE = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

/** `--target-time T | --target-lsn L | --latest`, exactly one, and `--dry-run`. */
export function parseDrArgs(argv: string[]): DrOptions {
  const targets: DrTarget[] = [];
  let dryRun = false;
  let validateOnly = false;
  for (let i = 0; i < argv.length; i += 1) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = (): string => {
      const v = inline ?? argv[(i += 1)];
      if (v === undefined || v === '') {
        throw new DrUsageError(`${flag} needs a value`);
      }
      return v;
    };
    switch (flag) {
      case '--target-time': {
        const raw = value();
        // an ISO 8601 instant with an explicit zone: a bare local time is ambiguous
        if (
          !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/.test(raw)
        ) {
          throw new DrUsageError(
            `--target-time must be an ISO 8601 time with a zone, e.g. 2026-11-30T21:15:00Z (got "${raw}")`,
          );
        }
        const time = new Date(raw.replace(' ', 'T'));
        if (Number.isNaN(time.getTime())) {
          throw new DrUsageError(`--target-time is not a valid time: "${raw}"`);
        }
        targets.push({ kind: 'time', time });
        break;
      }
      case '--target-lsn': {
        const lsn = value();
        if (!LSN_RE.test(lsn)) {
          throw new DrUsageError(`--target-lsn must look like 0/5003A20 (got "${lsn}")`);
        }
        targets.push({ kind: 'lsn', lsn: lsn.toUpperCase() });
        break;
      }
      case '--latest':
        targets.push({ kind: 'latest' });
        break;
      case '--dry-run':
        dryRun = true;
        break;
      case '--validate-only':
        validateOnly = true;
        break;
      default:
        throw new DrUsageError(`unknown argument "${argv[i]}"`);
    }
  }
  if (validateOnly) {
    if (targets.length > 0 || dryRun) {
      throw new DrUsageError('--validate-only takes no target and no --dry-run');
    }
    return { target: null, dryRun, validateOnly };
  }
  if (targets.length !== 1) {
    throw new DrUsageError(
      `exactly one of --target-time, --target-lsn, --latest is required (given: ${targets.length})`,
    );
  }
  return { target: targets[0], dryRun, validateOnly };
}

/** What step 1 decided: the backup set, the pgBackRest restore type and target. */
export interface DrPlan {
  target: DrTarget;
  backup: ProviderBackup;
  /** The recoverable range the restore replays through. */
  range: RecoverableRange;
  /** `docker/stack.sh dr-restore LABEL TYPE [TARGET]`. */
  restoreType: 'time' | 'lsn' | 'default';
  restoreTarget: string | null;
  /** The newest point the replay can reach (the end of the range: the archive's last segment). */
  reachableUntil: Date;
}

export function describeTarget(t: DrTarget): string {
  switch (t.kind) {
    case 'time':
      return `time ${t.time.toISOString()}`;
    case 'lsn':
      return `LSN ${t.lsn}`;
    case 'latest':
      return 'latest (the end of the archived WAL)';
  }
}

const inRange = (r: RecoverableRange, lsn: string): boolean =>
  lsnToBigInt(lsn) >= lsnToBigInt(r.fromLsn) && lsnToBigInt(lsn) < lsnToBigInt(r.toLsn);

/**
 * Backup identification: the target must lie in the recoverable window (gaps excluded);
 * the backup set is the newest one whose consistency point lies before the target in the
 * same contiguous stretch of WAL (so the replay from it reaches the target). `--latest`
 * takes the newest restorable set and replays to the end of its stretch. Pure.
 */
export function planRestore(
  backups: ProviderBackup[],
  window: DetailedRecoveryWindow,
  target: DrTarget,
): DrPlan {
  let range: RecoverableRange | undefined;
  if (target.kind === 'latest') {
    range = window.ranges[window.ranges.length - 1];
    if (!range) {
      throw new DrRefusedError(
        'no backup can be restored: the repository holds no backup set with its WAL',
      );
    }
  } else {
    const refused = refuseTarget(
      window,
      target.kind === 'time' ? { time: target.time } : { lsn: target.lsn },
    );
    if (refused) {
      throw new DrRefusedError(refused);
    }
    range =
      target.kind === 'time'
        ? window.ranges.find((r) => target.time >= r.from && target.time <= r.to)
        : window.ranges.find((r) => inRange(r, target.lsn));
  }
  if (!range) {
    throw new DrRefusedError(`no recoverable range holds ${describeTarget(target)}`);
  }
  const r = range;
  const candidates = backups.filter((b) => {
    if (!b.stopLsn || !inRange(r, b.stopLsn)) {
      return false;
    }
    switch (target.kind) {
      case 'time':
        return b.stoppedAt <= target.time;
      case 'lsn':
        return lsnToBigInt(b.stopLsn) <= lsnToBigInt(target.lsn);
      case 'latest':
        return true;
    }
  });
  const backup = candidates.sort(
    (a, b) => b.stoppedAt.getTime() - a.stoppedAt.getTime() || (a.label < b.label ? 1 : -1),
  )[0];
  if (!backup) {
    throw new DrRefusedError(
      `no backup set finished before ${describeTarget(target)} in the recoverable range ${r.from.toISOString()} .. ${r.to.toISOString()}`,
    );
  }
  return {
    target,
    backup,
    range: r,
    restoreType: target.kind === 'latest' ? 'default' : target.kind,
    restoreTarget:
      target.kind === 'time' ? pgTime(target.time) : target.kind === 'lsn' ? target.lsn : null,
    reachableUntil: r.to,
  };
}
