import { CircuitBreaker } from './circuit-breaker.js';

describe(CircuitBreaker.name, () => {
  let now = 0;
  const make = (): CircuitBreaker => new CircuitBreaker(3, 1000, () => now);

  beforeEach(() => {
    now = 0;
  });

  it('opens after the threshold of consecutive failures and stays open for openMs', () => {
    const cb = make();
    cb.failure();
    cb.failure();
    expect(cb.allow()).toBe(true);
    cb.failure();
    expect(cb.state).toBe('open');
    expect(cb.allow()).toBe(false);
    now = 999;
    expect(cb.allow()).toBe(false);
  });

  it('lets exactly one trial through when half-open; success closes it', () => {
    const cb = make();
    [1, 2, 3].forEach(() => cb.failure());
    now = 1000;
    expect(cb.allow()).toBe(true);
    expect(cb.state).toBe('half-open');
    expect(cb.allow()).toBe(false);
    cb.success();
    expect(cb.state).toBe('closed');
    expect(cb.allow()).toBe(true);
  });

  it('re-opens when the trial fails', () => {
    const cb = make();
    [1, 2, 3].forEach(() => cb.failure());
    now = 1000;
    expect(cb.allow()).toBe(true);
    cb.failure();
    expect(cb.state).toBe('open');
    now = 1500;
    expect(cb.allow()).toBe(false);
  });

  it('a success resets the failure count', () => {
    const cb = make();
    cb.failure();
    cb.failure();
    cb.success();
    cb.failure();
    cb.failure();
    expect(cb.state).toBe('closed');
  });
});
