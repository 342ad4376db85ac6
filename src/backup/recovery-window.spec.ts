import { computeWindow, refuseTarget, segmentIndex } from './recovery-window.js';
import { pgTime, restoreArgs } from './scratch-instance.js';
import { diffChecksums } from './table-checksums.js';

const seg = (n: number, t: number): { name: string; index: bigint; time: Date } => {
  const name = `00000001${'0'.repeat(8)}${n.toString(16).toUpperCase().padStart(8, '0')}`;
  return { name, index: segmentIndex(name), time: new Date(t * 1000) };
};
const backup = (label: string, start: number, stop: number, t: number) => ({
  label,
  archive: { start: seg(start, 0).name, stop: seg(stop, 0).name },
  lsn: {
    start: `0/${(start * 0x1000000).toString(16).toUpperCase()}`,
    stop: `0/${(stop * 0x1000000 + 0x60).toString(16).toUpperCase()}`,
  },
  timestamp: { start: t - 5, stop: t },
});

describe('computeWindow', () => {
  it('runs from the oldest backup to the newest contiguous segment', () => {
    const w = computeWindow(
      [backup('A', 2, 3, 1000)],
      [2, 3, 4, 5].map((n) => seg(n, 900 + n * 100)),
    );
    expect(w.gaps).toEqual([]);
    expect(w.ranges).toEqual([
      {
        from: new Date(1000_000),
        to: new Date(1400_000),
        fromLsn: '0/3000060',
        toLsn: '0/6000000',
      },
    ]);
  });

  it('a missing segment ends a range; a later backup starts another; the gap is reported', () => {
    const w = computeWindow(
      [backup('A', 2, 3, 1000), backup('B', 7, 8, 2000)],
      [2, 3, 4, 6, 7, 8, 9].map((n) => seg(n, 900 + n * 100)),
    );
    expect(w.gaps).toEqual([{ afterWal: seg(4, 0).name, beforeWal: seg(6, 0).name }]);
    expect(w.ranges.map((r) => [r.from.getTime() / 1000, r.to.getTime() / 1000])).toEqual([
      [1000, 1300],
      [2000, 2000],
    ]);
    expect(refuseTarget(w, { time: new Date(1200_000) })).toBeNull();
    const refused = refuseTarget(w, { time: new Date(1500_000) });
    expect(refused).toContain('outside the recoverable window');
    expect(refused).toContain(`archive gap: WAL missing between ${seg(4, 0).name}`);
    expect(refuseTarget(w, { lsn: '0/5000000' })).toContain('outside');
    expect(refuseTarget(w, { lsn: '0/4000000' })).toBeNull();
  });

  it('the same segment on a new timeline (after a restore or a promotion) is no gap', () => {
    const tl2 = seg(5, 1600);
    tl2.name = `00000002${tl2.name.slice(8)}`;
    const w = computeWindow(
      [backup('A', 2, 3, 1000)],
      [
        ...[2, 3, 4, 5].map((n) => seg(n, 900 + n * 100)),
        tl2,
        { ...seg(6, 1700), name: `00000002${seg(6, 0).name.slice(8)}` },
      ],
    );
    expect(w.gaps).toEqual([]);
    expect(w.ranges).toHaveLength(1);
    expect(w.ranges[0].toLsn).toBe('0/7000000');
  });

  it('a backup whose own WAL is missing is not restorable', () => {
    const w = computeWindow([backup('A', 2, 3, 1000)], [seg(2, 1000)]);
    expect(w.ranges).toEqual([]);
    expect(refuseTarget(w, { time: new Date(1000_000) })).toContain('no backup can be restored');
  });
});

describe('restoreArgs', () => {
  it.each([
    [
      { kind: 'backup' as const, label: 'L', lsn: '0/5' },
      ['--set=L', '--type=lsn', '--target=0/5', '--target-exclusive', '--target-action=promote'],
    ],
    [
      { kind: 'backup' as const, label: 'L' },
      ['--set=L', '--type=immediate', '--target-action=promote'],
    ],
    [
      { kind: 'time' as const, time: new Date('2026-11-30T20:00:01.250Z') },
      ['--type=time', '--target=2026-11-30 20:00:01.250+00', '--target-action=promote'],
    ],
    [
      { kind: 'lsn' as const, lsn: '0/7' },
      ['--type=lsn', '--target=0/7', '--target-action=promote'],
    ],
  ])('%j', (target, args) => {
    expect(restoreArgs(target)).toEqual(args);
  });

  it('formats times the way pgBackRest accepts them', () => {
    expect(pgTime(new Date('2026-01-02T03:04:05.006Z'))).toBe('2026-01-02 03:04:05.006+00');
  });
});

describe('diffChecksums', () => {
  it('names each differing, missing and unexpected table', () => {
    expect(
      diffChecksums(
        { a: { rows: 1, checksum: '5' }, b: { rows: 2, checksum: '6' } },
        {
          a: { rows: 1, checksum: '5' },
          b: { rows: 2, checksum: '7' },
          c: { rows: 0, checksum: '0' },
        },
      ),
    ).toEqual(['b: expected 2 rows (checksum 6), found 2 (checksum 7)', 'c: not in the manifest']);
  });
});
