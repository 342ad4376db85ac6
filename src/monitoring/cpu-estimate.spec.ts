import { CpuEstimator, minuteWindow } from './cpu-estimate.js';

describe('CpuEstimator', () => {
  it('is the mean of the last window samples over the CPUs, in %', () => {
    const e = new CpuEstimator(4, 3);
    expect(e.add('a', 2)).toBe(50);
    expect(e.add('a', 4)).toBe(75);
    expect(e.add('a', 0)).toBe(50);
    // the first sample (2) leaves the window: (4 + 0 + 1) / 3 / 4
    expect(e.add('a', 1)).toBeCloseTo((100 * 5) / 3 / 4, 10);
  });

  it('keeps nodes apart, forgets one, and caps at 100 %', () => {
    const e = new CpuEstimator(2, 4);
    expect(e.add('a', 6)).toBe(100);
    expect(e.add('b', 1)).toBe(50);
    e.forget('a');
    expect(e.add('a', 1)).toBe(50);
    e.clear();
    expect(e.add('b', 0)).toBe(0);
  });

  it('gives no estimate while the CPU count is unknown', () => {
    expect(new CpuEstimator(0, 4).add('a', 3)).toBeNull();
  });

  it('covers a minute at the sampling interval', () => {
    expect(minuteWindow(15)).toBe(4);
    expect(minuteWindow(1)).toBe(60);
    expect(minuteWindow(120)).toBe(1);
  });
});
