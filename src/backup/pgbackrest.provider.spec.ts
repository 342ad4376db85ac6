import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findGaps,
  manifestChecksum,
  parseArchiveListing,
  parseCheckedSegment,
  parseInfo,
} from './pgbackrest.provider.js';

const here = dirname(fileURLToPath(import.meta.url));
// Captured from the local stack: a full and a differential on stanza dbu (pgBackRest 2.45).
const INFO = readFileSync(join(here, 'fixtures', 'pgbackrest-info.json'), 'utf8');

describe(parseInfo.name, () => {
  it('reads label, times, LSNs, sizes and references of each set, oldest first', () => {
    const [full, diff] = parseInfo(INFO, 'dbu');
    expect(full).toEqual({
      label: '20261130-204654F',
      type: 'full',
      startedAt: new Date(1796071614 * 1000),
      stoppedAt: new Date(1796071616 * 1000),
      startLsn: '0/4000028',
      stopLsn: '0/4000100',
      sizeBytes: 31304312,
      repoSizeBytes: 3881872,
      checksum: null,
      references: [],
    });
    expect(diff.label).toBe('20261130-204654F_20261130-204703D');
    expect(diff.type).toBe('diff');
    expect(diff.references).toEqual(['20261130-204654F']);
    expect(diff.repoSizeBytes).toBeLessThan(full.repoSizeBytes ?? 0);
  });

  it('refuses output without the stanza', () => {
    expect(() => parseInfo(INFO, 'other')).toThrow(/no stanza "other"/);
  });

  it('lists nothing for a stanza with no backups yet', () => {
    expect(parseInfo(JSON.stringify([{ name: 'dbu', backup: [] }]), 'dbu')).toEqual([]);
  });
});

describe(manifestChecksum.name, () => {
  // The end of a real backup.manifest (pgBackRest 2.45, format 5).
  const tail = [
    '[target:path:default]',
    'group="postgres"',
    'mode="0700"',
    'user="postgres"',
    '',
    '[backrest]',
    'backrest-checksum="37f25f69c881db7909ab16e079be19af726ca88d"',
    '',
  ].join('\n');

  it('reads the SHA-1 that seals the manifest', () => {
    expect(manifestChecksum(tail, 'L')).toBe('37f25f69c881db7909ab16e079be19af726ca88d');
  });

  it('refuses a manifest without one, naming the backup', () => {
    expect(() => manifestChecksum('[backrest]\nbackrest-format=5\n', '20261130-1F')).toThrow(
      /backup 20261130-1F has no backrest-checksum/,
    );
  });
});

describe(parseArchiveListing.name, () => {
  it('keeps WAL segments only, sorted', () => {
    const listing = JSON.stringify({
      '.': { type: 'path' },
      '15-1/0000000100000000/000000010000000000000002-b2615bfe97bf91e88e569a31726f8b595927032b.zst':
        { type: 'file' },
      '15-1/0000000100000000/000000010000000000000001-1642b462d638945d6c033bf038f3ecc920dd1439.zst':
        { type: 'file' },
      '15-1/0000000100000000/000000010000000000000002.00000028.backup': { type: 'file' },
      'archive.info': { type: 'file' },
    });
    expect(parseArchiveListing(listing)).toEqual([
      '000000010000000000000001',
      '000000010000000000000002',
    ]);
  });
});

describe(findGaps.name, () => {
  it.each([
    [['000000010000000000000001', '000000010000000000000002'], []],
    // 0x…FF rolls over into the next log file: contiguous
    [['0000000100000000000000FF', '000000010000000100000000'], []],
    [
      ['000000010000000000000001', '000000010000000000000004'],
      [{ afterWal: '000000010000000000000001', beforeWal: '000000010000000000000004' }],
    ],
    // a new timeline starts where the old one ended: not a gap
    [['000000010000000000000003', '000000020000000000000009'], []],
  ])('%j → %j', (segments, gaps) => {
    expect(findGaps(segments)).toEqual(gaps);
  });
});

describe(parseCheckedSegment.name, () => {
  it('reads the segment pgbackrest check switched to and saw archived', () => {
    const out = [
      '2026-12-01 04:13:42.550 P00   INFO: switch wal not performed because this is a standby',
      "2026-12-01 04:13:42.755 P00   INFO: WAL segment 000000010000000000000062 successfully archived to '/repo/archive/dbu/15-1/0000000100000000/000000010000000000000062-46fa214bceb6ad7ddca15f400c7806457b39a929.zst' on repo1",
      '2026-12-01 04:13:42.758 P00   INFO: check command end: completed successfully (1435ms)',
    ].join('\n');
    expect(parseCheckedSegment(out)).toBe('000000010000000000000062');
  });

  it('is null when the output names no archived segment', () => {
    expect(parseCheckedSegment('INFO: check command end: completed successfully')).toBeNull();
  });
});
