import { resolveWindow, WINDOW_PATTERN, windowMs } from './insights-window.js';

const NOW = new Date('2026-12-01T12:00:00.000Z');
const iso = (w: { from: Date; to: Date }): { from: string; to: string } => ({
  from: w.from.toISOString(),
  to: w.to.toISOString(),
});

describe(resolveWindow.name, () => {
  it.each([
    [{}, '2026-12-01T11:00:00.000Z', '2026-12-01T12:00:00.000Z'],
    [{ window: '15m' }, '2026-12-01T11:45:00.000Z', '2026-12-01T12:00:00.000Z'],
    [{ from: '2026-12-01T10:00:00Z' }, '2026-12-01T10:00:00.000Z', '2026-12-01T12:00:00.000Z'],
    [
      { from: '2026-12-01T10:00:00Z', window: '30s' },
      '2026-12-01T10:00:00.000Z',
      '2026-12-01T10:00:30.000Z',
    ],
    [
      { to: '2026-12-01T06:00:00Z', window: '2h' },
      '2026-12-01T04:00:00.000Z',
      '2026-12-01T06:00:00.000Z',
    ],
    [
      { from: '2026-11-30T00:00:00Z', to: '2026-12-01T00:00:00Z' },
      '2026-11-30T00:00:00.000Z',
      '2026-12-01T00:00:00.000Z',
    ],
  ])('%j → [%s, %s]', (q, from, to) => {
    expect(iso(resolveWindow(q, NOW))).toEqual({ from, to });
  });
});

describe(windowMs.name, () => {
  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
  ])('%s is %d ms', (w, ms) => {
    expect(WINDOW_PATTERN.test(w)).toBe(true);
    expect(windowMs(w)).toBe(ms);
  });

  it.each(['0h', '1y', 'h', '1.5h', '-1h', '1234567h'])('%s is not a window', (w) => {
    expect(WINDOW_PATTERN.test(w)).toBe(false);
  });
});
