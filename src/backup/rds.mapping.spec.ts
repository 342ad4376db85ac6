import type { DBSnapshot } from '@aws-sdk/client-rds';
import {
  expiredSnapshots,
  rdsIdentifier,
  settingsDrift,
  snapshotIdentifier,
  toProviderBackup,
} from './rds.mapping.js';

const NOW = new Date('2026-11-30T12:00:00Z');
const DAY = 86_400_000;
const OURS = [
  { Key: 'service', Value: 'database-unit' },
  { Key: 'created-by', Value: 'database-unit' },
  { Key: 'kind', Value: 'weekly' },
];

function snap(over: Partial<DBSnapshot>): DBSnapshot {
  return {
    DBSnapshotIdentifier: 'snap',
    SnapshotType: 'manual',
    Status: 'available',
    SnapshotCreateTime: new Date(NOW.getTime() - 100 * DAY),
    AllocatedStorage: 100,
    TagList: OURS,
    ...over,
  };
}

describe(toProviderBackup.name, () => {
  it('maps an available snapshot: identifier, time, allocated size in bytes, no LSNs', () => {
    const at = new Date('2026-11-01T03:10:00Z');
    expect(
      toProviderBackup(
        snap({ DBSnapshotIdentifier: 'rds:prod-2026-11-01-03-10', SnapshotCreateTime: at }),
      ),
    ).toEqual({
      label: 'rds:prod-2026-11-01-03-10',
      type: 'snapshot',
      startedAt: at,
      stoppedAt: at,
      startLsn: null,
      stopLsn: null,
      sizeBytes: 100 * 1024 ** 3,
      repoSizeBytes: null,
      checksum: null,
      references: [],
    });
  });

  it.each(['creating', 'deleting', 'failed'])('skips a snapshot that is %s', (Status) => {
    expect(toProviderBackup(snap({ Status }))).toBeNull();
  });
});

describe(expiredSnapshots.name, () => {
  const weeks = 12;
  it.each([
    [
      'ours, manual, 85 days old',
      snap({ SnapshotCreateTime: new Date(NOW.getTime() - 85 * DAY) }),
      true,
    ],
    [
      'ours, manual, 83 days old',
      snap({ SnapshotCreateTime: new Date(NOW.getTime() - 83 * DAY) }),
      false,
    ],
    ['automated (RDS expires it)', snap({ SnapshotType: 'automated' }), false],
    ['not tagged by us', snap({ TagList: [{ Key: 'service', Value: 'database-unit' }] }), false],
    ['tagged by someone else', snap({ TagList: [{ Key: 'created-by', Value: 'ops' }] }), false],
    ['still being created', snap({ Status: 'creating' }), false],
  ])('%s → expired: %s', (_name, s, expired) => {
    expect(expiredSnapshots([s], NOW, weeks)).toEqual(expired ? [s] : []);
  });

  it('follows the configured number of weeks', () => {
    const s = snap({ SnapshotCreateTime: new Date(NOW.getTime() - 15 * DAY) });
    expect(expiredSnapshots([s], NOW, 2)).toEqual([s]);
    expect(expiredSnapshots([s], NOW, 3)).toEqual([]);
  });
});

describe(settingsDrift.name, () => {
  const expected = { retentionDays: 30, window: '03:00-04:00' };
  it('reports nothing when retention and window match', () => {
    expect(
      settingsDrift({ BackupRetentionPeriod: 30, PreferredBackupWindow: '03:00-04:00' }, expected),
    ).toEqual([]);
  });

  it('reports each differing setting with the expected and actual values', () => {
    expect(
      settingsDrift({ BackupRetentionPeriod: 7, PreferredBackupWindow: '05:00-05:30' }, expected),
    ).toEqual([
      { setting: 'BackupRetentionPeriod', expected: '30', actual: '7' },
      { setting: 'PreferredBackupWindow', expected: '03:00-04:00', actual: '05:00-05:30' },
    ]);
  });

  it('treats automated backups switched off (no retention, no window) as drift', () => {
    expect(settingsDrift({}, expected)).toEqual([
      { setting: 'BackupRetentionPeriod', expected: '30', actual: '0' },
      { setting: 'PreferredBackupWindow', expected: '03:00-04:00', actual: '(none)' },
    ]);
  });
});

describe(rdsIdentifier.name, () => {
  it.each([
    [
      'recipes_test_backupval_1a2b-validation-0f1e2d3c-abc123',
      'recipes-test-backupval-1a2b-validation-0f1e2d3c-abc123',
    ],
    ['9lives--DB__x-', 'lives-db-x'],
    ['a'.repeat(70), 'a'.repeat(63)],
    [`${'b'.repeat(62)}-c`, 'b'.repeat(62)],
  ])('%s → %s', (text, id) => {
    expect(rdsIdentifier(text)).toBe(id);
    expect(id).toMatch(/^[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]$/);
  });

  it('names snapshots after the instance, the kind and the second', () => {
    expect(snapshotIdentifier('prod-db', 'weekly', new Date('2026-11-29T03:30:05.123Z'))).toBe(
      'prod-db-dbu-weekly-20261129033005',
    );
  });
});
