import {
  StatementCounters,
  statementDeltas,
  statementKey,
  StatementSnapshot,
} from './statement-deltas.js';

function entry(
  queryid: string,
  calls: number,
  ms: number,
  extra: Partial<StatementCounters> = {},
): StatementCounters {
  return {
    queryid,
    userid: '10',
    toplevel: true,
    query: `SELECT ${queryid}`,
    calls,
    totalExecMs: ms,
    rows: calls,
    sharedBlksHit: calls * 10,
    sharedBlksRead: calls,
    ...extra,
  };
}

function snap(entries: StatementCounters[], statsReset: string | null = 'r1'): StatementSnapshot {
  return {
    takenAt: new Date(),
    statsReset,
    entries: new Map(entries.map((e) => [statementKey(e), e])),
  };
}

describe(statementDeltas.name, () => {
  it('subtracts the previous snapshot and ranks by time', () => {
    const d = statementDeltas(
      snap([entry('1', 10, 100), entry('2', 5, 1000)]),
      snap([entry('1', 30, 2100), entry('2', 6, 1010)]),
      10,
    );
    expect(d).toEqual([
      {
        queryid: '1',
        query: 'SELECT 1',
        calls: 20,
        totalExecMs: 2000,
        rows: 20,
        sharedBlksHit: 200,
        sharedBlksRead: 20,
      },
      {
        queryid: '2',
        query: 'SELECT 2',
        calls: 1,
        totalExecMs: 10,
        rows: 1,
        sharedBlksHit: 10,
        sharedBlksRead: 1,
      },
    ]);
  });

  it('leaves out statements that did not run', () => {
    expect(statementDeltas(snap([entry('1', 10, 100)]), snap([entry('1', 10, 100)]), 10)).toEqual(
      [],
    );
  });

  it.each([
    ['calls went backwards (entry reset or evicted and re-added)', entry('1', 3, 30)],
    ['time went backwards', entry('1', 12, 5)],
  ])('counts the whole current value when %s', (_why, now) => {
    const [d] = statementDeltas(snap([entry('1', 10, 100)]), snap([now]), 10);
    expect(d).toMatchObject({ calls: now.calls, totalExecMs: now.totalExecMs });
  });

  it('counts everything since the reset when stats_reset changed', () => {
    const [d] = statementDeltas(
      snap([entry('1', 10, 100)], 'r1'),
      snap([entry('1', 15, 150)], 'r2'),
      10,
    );
    expect(d).toMatchObject({ calls: 15, totalExecMs: 150 });
  });

  it('counts a statement first seen in this snapshot whole', () => {
    const [d] = statementDeltas(snap([]), snap([entry('7', 2, 40)]), 10);
    expect(d).toMatchObject({ queryid: '7', calls: 2, totalExecMs: 40 });
  });

  it('sums the entries of one queryid across roles and nesting levels', () => {
    const prev = snap([entry('1', 1, 10), entry('1', 1, 10, { userid: '11' })]);
    const now = snap([
      entry('1', 3, 30),
      entry('1', 2, 20, { userid: '11' }),
      entry('1', 4, 40, { toplevel: false }),
    ]);
    expect(statementDeltas(prev, now, 10)).toEqual([
      expect.objectContaining({ queryid: '1', calls: 2 + 1 + 4, totalExecMs: 20 + 10 + 40 }),
    ]);
  });

  it('keeps at most `limit` statements, the most time-consuming', () => {
    const now = snap([entry('1', 1, 5), entry('2', 1, 50), entry('3', 1, 20)]);
    expect(statementDeltas(snap([]), now, 2).map((d) => d.queryid)).toEqual(['2', '3']);
  });
});
