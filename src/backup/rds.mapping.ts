import type { DBInstance, DBSnapshot, Tag } from '@aws-sdk/client-rds';
import type { RdsBackupConfig } from '../config/app-config.js';
import type { ProviderBackup, SettingsDrift } from './backup.types.js';
import { BackupType } from './backup.types.js';

/** Tags on every snapshot and temporary instance this service creates. */
export const RdsTag = {
  Service: 'service',
  Kind: 'kind',
  CreatedBy: 'created-by',
  Purpose: 'purpose',
} as const;

export const SERVICE_TAG_VALUE = 'database-unit';
export const CREATED_BY_TAG_VALUE = 'database-unit';

const GIB = 1024 ** 3;
const DAY_MS = 86_400_000;
const MAX_INSTANCE_ID = 63;

export function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** Created by this service (tags `service` and `created-by` both ours)? */
export function ours(tags: Tag[] | undefined): boolean {
  return (
    tagValue(tags, RdsTag.Service) === SERVICE_TAG_VALUE &&
    tagValue(tags, RdsTag.CreatedBy) === CREATED_BY_TAG_VALUE
  );
}

/**
 * An RDS identifier from free text: lowercase letters, digits and single hyphens, starting
 * with a letter, no trailing hyphen (RDS rejects the rest).
 */
export function rdsIdentifier(text: string, max = MAX_INSTANCE_ID): string {
  let id = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+/, '');
  id = id.slice(0, max).replace(/-+$/, '');
  return id || 'dbu';
}

/** `<instance>-dbu-<kind>-<yyyymmddhhmmss>` (unique per second; one backup runs at a time). */
export function snapshotIdentifier(instanceId: string, kind: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return rdsIdentifier(`${instanceId}-dbu-${kind}-${stamp}`, 255);
}

/** An available snapshot as a provider backup; null while it is being created or deleted. */
export function toProviderBackup(s: DBSnapshot): ProviderBackup | null {
  if (s.Status !== 'available' || !s.DBSnapshotIdentifier || !s.SnapshotCreateTime) {
    return null;
  }
  return {
    label: s.DBSnapshotIdentifier,
    type: BackupType.Snapshot,
    // NOTE: RDS gives one time per snapshot (the storage snapshot's start); its LSN is unknown.
    startedAt: s.SnapshotCreateTime,
    stoppedAt: s.SnapshotCreateTime,
    startLsn: null,
    stopLsn: null,
    sizeBytes: s.AllocatedStorage === undefined ? null : s.AllocatedStorage * GIB,
    repoSizeBytes: null,
    // RDS gives no checksum of a snapshot
    checksum: null,
    references: [],
  };
}

/**
 * Manual snapshots of ours older than the weekly retention (the spec's 12 weeks): the ones
 * to delete. Automated snapshots are RDS's to expire; others' manual snapshots are left.
 */
export function expiredSnapshots(snapshots: DBSnapshot[], now: Date, weeks: number): DBSnapshot[] {
  const cutoff = now.getTime() - weeks * 7 * DAY_MS;
  return snapshots.filter(
    (s) =>
      s.SnapshotType === 'manual' &&
      s.Status === 'available' &&
      s.SnapshotCreateTime !== undefined &&
      s.SnapshotCreateTime.getTime() < cutoff &&
      ours(s.TagList),
  );
}

/** The source instance's automated backups against the configuration (spec primary_backups). */
export function settingsDrift(
  instance: DBInstance,
  expected: RdsBackupConfig['expected'],
): SettingsDrift[] {
  const drift: SettingsDrift[] = [];
  const retention = instance.BackupRetentionPeriod ?? 0;
  if (retention !== expected.retentionDays) {
    drift.push({
      setting: 'BackupRetentionPeriod',
      expected: String(expected.retentionDays),
      actual: String(retention),
    });
  }
  const window = instance.PreferredBackupWindow ?? '(none)';
  if (window !== expected.window) {
    drift.push({ setting: 'PreferredBackupWindow', expected: expected.window, actual: window });
  }
  return drift;
}

/** States from which a DB instance or snapshot will not become available by itself. */
export const DEAD_END_STATES = new Set([
  'failed',
  'incompatible-restore',
  'incompatible-parameters',
  'incompatible-network',
  'incompatible-option-group',
  'inaccessible-encryption-credentials',
  'storage-full',
  'deleting',
]);
