/** Throttled progress lines on stderr: done/total, rate, ETA. */
export class Progress {
  private readonly started = performance.now();
  private lastPrint = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unit: string,
    private readonly everyMs = 3_000,
  ) {}

  update(done: number, force = false): void {
    const now = performance.now();
    if (!force && now - this.lastPrint < this.everyMs) {
      return;
    }
    this.lastPrint = now;
    const elapsedS = (now - this.started) / 1000;
    const rate = done / Math.max(elapsedS, 1e-9);
    const pct = this.total > 0 ? ` (${((100 * done) / this.total).toFixed(1)} %)` : '';
    const eta =
      done > 0 && done < this.total ? `, ETA ${formatSeconds((this.total - done) / rate)}` : '';
    log(
      `${this.label}: ${done.toLocaleString('en')}/${this.total.toLocaleString('en')} ${this.unit}${pct}, ` +
        `${rate.toFixed(rate < 10 ? 1 : 0)} ${this.unit}/s, ${formatSeconds(elapsedS)} elapsed${eta}`,
    );
  }

  done(done = this.total): number {
    this.update(done, true);
    return (performance.now() - this.started) / 1000;
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) {
    return '?';
  }
  if (s < 90) {
    return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  }
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s`;
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Runs `fn` and returns its result with the wall-clock seconds it took. */
export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, (performance.now() - t0) / 1000];
}
