import { CPU, WaitAccumulator } from './wait-accumulator.js';

describe(WaitAccumulator.name, () => {
  it('sums samples and sessions per minute, wait event and statement', () => {
    const acc = new WaitAccumulator();
    const lock = { waitEventType: 'Lock', waitEvent: 'transactionid', queryId: '42' };
    const cpu = { waitEventType: null, waitEvent: null, queryId: null };
    acc.add(new Date('2026-12-01T12:00:01Z'), [lock, cpu]);
    acc.add(new Date('2026-12-01T12:00:59Z'), [lock]);
    acc.add(new Date('2026-12-01T12:01:00Z'), []);
    const { samples, waits } = acc.drain();
    expect(samples).toEqual([
      { minute: new Date('2026-12-01T12:00:00Z'), samples: 2 },
      { minute: new Date('2026-12-01T12:01:00Z'), samples: 1 },
    ]);
    expect(waits).toEqual([
      {
        minute: new Date('2026-12-01T12:00:00Z'),
        waitEventType: 'Lock',
        waitEvent: 'transactionid',
        queryId: '42',
        sessions: 2,
      },
      {
        minute: new Date('2026-12-01T12:00:00Z'),
        waitEventType: CPU,
        waitEvent: CPU,
        queryId: '0',
        sessions: 1,
      },
    ]);
    expect(acc.isEmpty).toBe(true);
    expect(acc.drain()).toEqual({ samples: [], waits: [] });
  });
});
