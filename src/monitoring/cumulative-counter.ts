import { Counter, type Registry } from 'prom-client';

/**
 * A Prometheus counter mirroring a cumulative figure read from elsewhere
 * (pg_stat_database, Redis INFO). The first reading of a series adds the whole value,
 * so the counter starts equal to the source's total; later readings add the increase.
 * A smaller reading (statistics reset, restarted server) adds the new value: the
 * counter stays monotonic and rate() sees the reset as a reset.
 */
export class CumulativeCounter<L extends string> {
  readonly counter: Counter<L>;
  private readonly last = new Map<string, number>();

  constructor(opts: {
    name: string;
    help: string;
    labelNames: readonly L[];
    registers: Registry[];
  }) {
    this.counter = new Counter<L>({ ...opts, labelNames: [...opts.labelNames] });
  }

  observe(labels: Partial<Record<L, string>>, value: number): void {
    if (!Number.isFinite(value) || value < 0) {
      return;
    }
    const key = keyOf(labels);
    const previous = this.last.get(key);
    this.last.set(key, value);
    const increase = previous === undefined || value < previous ? value : value - previous;
    this.counter.inc(labels, increase);
  }

  /** Removes one series (and forgets its baseline). */
  remove(labels: Partial<Record<L, string>>): void {
    this.last.delete(keyOf(labels));
    this.counter.remove(labels);
  }

  /** Removes every series (and forgets the baselines). */
  reset(): void {
    this.last.clear();
    this.counter.reset();
  }
}

function keyOf(labels: object): string {
  return JSON.stringify(Object.entries(labels).sort());
}
