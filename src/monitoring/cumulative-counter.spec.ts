import { Registry } from 'prom-client';
import { CumulativeCounter } from './cumulative-counter.js';

describe(CumulativeCounter.name, () => {
  async function value(c: CumulativeCounter<'node'>, node: string): Promise<number | undefined> {
    return (await c.counter.get()).values.find((v) => v.labels.node === node)?.value;
  }

  it('starts at the source total, adds increases, survives a reset of the source', async () => {
    const c = new CumulativeCounter({
      name: 'x_total',
      help: 'x',
      labelNames: ['node'],
      registers: [new Registry()],
    });
    c.observe({ node: 'a' }, 10);
    expect(await value(c, 'a')).toBe(10);
    c.observe({ node: 'a' }, 15);
    expect(await value(c, 'a')).toBe(15);
    c.observe({ node: 'a' }, 4); // statistics reset: 4 happened since
    expect(await value(c, 'a')).toBe(19);
    c.observe({ node: 'b' }, 2);
    expect(await value(c, 'b')).toBe(2);
    c.reset();
    expect(await value(c, 'a')).toBeUndefined();
    c.observe({ node: 'a' }, 20);
    expect(await value(c, 'a')).toBe(20);
  });
});
