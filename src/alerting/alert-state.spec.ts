import { AlertState, breaches, INITIAL_STATE, step, StepInput } from './alert-state.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);

function input(value: number | null, s: number, over: Partial<StepInput> = {}): StepInput {
  return {
    value,
    comparison: 'GreaterThanThreshold',
    threshold: 10,
    forMs: 60_000,
    renotifyMs: 600_000,
    silenced: false,
    now: at(s),
    ...over,
  };
}

/** Runs (value, second) pairs through `step`, returning states and notifications. */
function run(
  points: Array<[number | null, number, Partial<StepInput>?]>,
  from: AlertState = INITIAL_STATE,
): Array<[string, string | null]> {
  let state = from;
  return points.map(([v, s, over]) => {
    const { next, notify } = step(state, input(v, s, over));
    state = next;
    return [next.state, notify];
  });
}

describe(step.name, () => {
  it.each([
    ['GreaterThanThreshold', 11, true],
    ['GreaterThanThreshold', 10, false],
    ['GreaterThanOrEqualToThreshold', 10, true],
    ['LessThanThreshold', 9, true],
    ['LessThanThreshold', 10, false],
    ['LessThanOrEqualToThreshold', 10, true],
  ] as const)('%s: %d against 10 → %s', (comparison, value, expected) => {
    expect(breaches(value, comparison, 10)).toBe(expected);
  });

  it('treats a missing value as not breaching', () => {
    expect(breaches(null, 'LessThanThreshold', 10)).toBe(false);
    expect(breaches(Number.NaN, 'GreaterThanThreshold', 10)).toBe(false);
  });

  it('goes pending, fires once the condition held for `for`, then resolves', () => {
    expect(
      run([
        [5, 0],
        [11, 10],
        [12, 40],
        [12, 70],
        [12, 100],
        [3, 130],
        [3, 160],
      ]),
    ).toEqual([
      ['inactive', null],
      ['pending', null],
      ['pending', null],
      ['firing', 'firing'],
      ['firing', null],
      ['resolved', 'resolved'],
      ['resolved', null],
    ]);
  });

  it('fires at once with for = 0', () => {
    expect(run([[11, 0, { forMs: 0 }]])).toEqual([['firing', 'firing']]);
  });

  it('drops back to inactive when the condition clears while pending, without a word', () => {
    expect(
      run([
        [11, 0],
        [5, 30],
        [11, 40],
        [11, 90],
      ]),
    ).toEqual([
      ['pending', null],
      ['inactive', null],
      ['pending', null],
      ['pending', null],
    ]);
  });

  it('keeps the pending start across evaluations (a new leader reads it from the database)', () => {
    const { next } = step(INITIAL_STATE, input(11, 0));
    expect(next.pendingSince).toEqual(at(0));
    // Another instance continues from the stored state.
    const stored: AlertState = JSON.parse(JSON.stringify(next), (k, v: unknown) =>
      typeof v === 'string' && k.endsWith('Since') ? new Date(v) : v,
    ) as AlertState;
    expect(step(stored, input(11, 61)).notify).toBe('firing');
  });

  it('re-notifies a firing alert every renotify interval, and never with renotify 0', () => {
    expect(
      run([
        [11, 0, { forMs: 0 }],
        [11, 300, { forMs: 0 }],
        [11, 600, { forMs: 0 }],
        [11, 900, { forMs: 0 }],
        [11, 1200, { forMs: 0 }],
      ]).map(([, n]) => n),
    ).toEqual(['firing', null, 'firing', null, 'firing']);
    expect(
      run([
        [11, 0, { forMs: 0, renotifyMs: 0 }],
        [11, 6000, { forMs: 0, renotifyMs: 0 }],
      ]).map(([, n]) => n),
    ).toEqual(['firing', null]);
  });

  it('does not notify twice from the same stored state (a second leader after the first sent)', () => {
    const first = step(INITIAL_STATE, input(11, 0, { forMs: 0 }));
    expect(first.notify).toBe('firing');
    expect(step(first.next, input(11, 15, { forMs: 0 })).notify).toBeNull();
  });

  it('holds back notifications while silenced and sends the firing one once the silence ends', () => {
    expect(
      run([
        [11, 0, { forMs: 0, silenced: true }],
        [11, 30, { forMs: 0, silenced: true }],
        [11, 60, { forMs: 0 }],
        [11, 90, { forMs: 0 }],
      ]),
    ).toEqual([
      ['firing', null],
      ['firing', null],
      ['firing', 'firing'],
      ['firing', null],
    ]);
  });

  it('does not send a resolution of an alert that was never sent', () => {
    expect(
      run([
        [11, 0, { forMs: 0, silenced: true }],
        [5, 30, { forMs: 0, silenced: true }],
      ]),
    ).toEqual([
      ['firing', null],
      ['resolved', null],
    ]);
  });

  it('fires again after a resolution when the condition returns (through pending)', () => {
    expect(
      run([
        [11, 0, { forMs: 0 }],
        [5, 10, { forMs: 0 }],
        [11, 20],
        [11, 90],
      ]),
    ).toEqual([
      ['firing', 'firing'],
      ['resolved', 'resolved'],
      ['pending', null],
      ['firing', 'firing'],
    ]);
  });

  it('LessThanThreshold rules fire on low values and ignore missing ones', () => {
    expect(
      run([
        [null, 0, { comparison: 'LessThanThreshold', forMs: 0 }],
        [0.5, 10, { comparison: 'LessThanThreshold', threshold: 0.7, forMs: 0 }],
      ]),
    ).toEqual([
      ['inactive', null],
      ['firing', 'firing'],
    ]);
  });
});
