import type { ProviderBackup } from '../backup.types.js';
import type { DetailedRecoveryWindow } from '../recovery-window.js';
import { DrRefusedError, DrUsageError, parseDrArgs, planRestore } from './dr-plan.js';

const at = (s: number): Date => new Date(Date.UTC(2026, 10, 30, 20, 0, s));

const set = (label: string, stop: number, stopLsn: string): ProviderBackup => ({
  label,
  type: 'full',
  startedAt: at(stop - 5),
  stoppedAt: at(stop),
  startLsn: null,
  stopLsn,
  sizeBytes: null,
  repoSizeBytes: null,
  checksum: null,
  references: [],
});

/** Two stretches of WAL: 0/3000060..0/6000000 (seconds 100..400), then a gap, 0/9000060..0/C000000 (1000..1400). */
const window: DetailedRecoveryWindow = {
  from: at(100),
  to: at(1400),
  gaps: [{ afterWal: '000000010000000000000005', beforeWal: '000000010000000000000009' }],
  gapDetails: [
    {
      afterWal: '000000010000000000000005',
      beforeWal: '000000010000000000000009',
      after: at(400),
      before: at(900),
    },
  ],
  ranges: [
    { from: at(100), to: at(400), fromLsn: '0/3000060', toLsn: '0/6000000' },
    { from: at(1000), to: at(1400), fromLsn: '0/9000060', toLsn: '0/C000000' },
  ],
  newest: at(1400),
};
const backups = [
  set('20261130-200140F', 100, '0/3000060'),
  set('20261130-200320F_20261130-200320D', 200, '0/4000060'),
  set('20261130-201640F', 1000, '0/9000060'),
];

describe(parseDrArgs.name, () => {
  it.each([
    [
      ['--target-time', '2026-11-30T20:05:00Z'],
      { kind: 'time', time: new Date('2026-11-30T20:05:00Z') },
    ],
    [
      ['--target-time=2026-11-30 20:05:00.5+01:00'],
      { kind: 'time', time: new Date('2026-11-30T19:05:00.5Z') },
    ],
    [['--target-lsn', '0/4a000f0'], { kind: 'lsn', lsn: '0/4A000F0' }],
    [['--latest'], { kind: 'latest' }],
  ])('%j', (argv, target) => {
    expect(parseDrArgs(argv)).toEqual({ target, dryRun: false, validateOnly: false });
  });

  it('takes --validate-only without a target', () => {
    expect(parseDrArgs(['--validate-only'])).toEqual({
      target: null,
      dryRun: false,
      validateOnly: true,
    });
    expect(() => parseDrArgs(['--validate-only', '--latest'])).toThrow(/no target/);
  });

  it('takes --dry-run', () => {
    expect(parseDrArgs(['--latest', '--dry-run']).dryRun).toBe(true);
  });

  it.each([
    [[], /exactly one/],
    [['--latest', '--target-lsn', '0/1'], /exactly one/],
    [['--target-time', '2026-11-30 20:05'], /with a zone/],
    [['--target-time'], /needs a value/],
    [['--target-lsn', 'abc'], /0\/5003A20/],
    [['--force'], /unknown argument/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseDrArgs(argv)).toThrow(DrUsageError);
    expect(() => parseDrArgs(argv)).toThrow(message);
  });
});

describe(planRestore.name, () => {
  it('takes the newest set that finished before a time target, in its stretch of WAL', () => {
    const plan = planRestore(backups, window, { kind: 'time', time: at(300) });
    expect(plan.backup.label).toBe('20261130-200320F_20261130-200320D');
    expect(plan.restoreType).toBe('time');
    expect(plan.restoreTarget).toBe('2026-11-30 20:05:00.000+00');
  });

  it('never a set from another stretch, even a newer one', () => {
    const plan = planRestore(backups, window, { kind: 'time', time: at(1200) });
    expect(plan.backup.label).toBe('20261130-201640F');
    expect(plan.range.fromLsn).toBe('0/9000060');
  });

  it('an LSN target: the newest set whose consistency point precedes it', () => {
    const plan = planRestore(backups, window, { kind: 'lsn', lsn: '0/3800000' });
    expect(plan.backup.label).toBe('20261130-200140F');
    expect(plan).toMatchObject({ restoreType: 'lsn', restoreTarget: '0/3800000' });
  });

  it('latest: the newest restorable set, replayed to the end of the archive', () => {
    const plan = planRestore(backups, window, { kind: 'latest' });
    expect(plan).toMatchObject({
      restoreType: 'default',
      restoreTarget: null,
      reachableUntil: at(1400),
    });
    expect(plan.backup.label).toBe('20261130-201640F');
  });

  it.each([
    [
      'before the oldest backup',
      { kind: 'time' as const, time: at(50) },
      /outside the recoverable window/,
    ],
    ['in the archive gap', { kind: 'time' as const, time: at(600) }, /archive gap/],
    ['after the newest archived WAL', { kind: 'time' as const, time: at(2000) }, /outside/],
    ['an LSN in the gap', { kind: 'lsn' as const, lsn: '0/7000000' }, /outside/],
  ])('refuses a target %s', (_what, target, message) => {
    expect(() => planRestore(backups, window, target)).toThrow(DrRefusedError);
    expect(() => planRestore(backups, window, target)).toThrow(message);
  });

  it('refuses when the repository holds nothing restorable', () => {
    expect(() =>
      planRestore(
        [],
        { ...window, ranges: [], from: null, to: null, newest: null },
        { kind: 'latest' },
      ),
    ).toThrow(/no backup can be restored/);
  });
});
