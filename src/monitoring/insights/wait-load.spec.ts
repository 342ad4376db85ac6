import { loadBreakdown } from './wait-load.js';

describe(loadBreakdown.name, () => {
  const rows = [
    {
      waitEventType: 'Lock',
      waitEvent: 'transactionid',
      queryId: '1',
      query: 'UPDATE t',
      sessions: 10,
    },
    { waitEventType: 'CPU', waitEvent: 'CPU', queryId: '1', query: 'UPDATE t', sessions: 5 },
    {
      waitEventType: 'IO',
      waitEvent: 'DataFileRead',
      queryId: '2',
      query: 'SELECT t',
      sessions: 3,
    },
    { waitEventType: 'Lock', waitEvent: 'tuple', queryId: null, query: null, sessions: 2 },
  ];

  it('divides the sessions counted by the samples taken', () => {
    const load = loadBreakdown(10, rows, 10);
    expect(load.averageActiveSessions).toBe(2);
    expect(load.byWaitEventType).toEqual([
      { waitEventType: 'Lock', aas: 1.2 },
      { waitEventType: 'CPU', aas: 0.5 },
      { waitEventType: 'IO', aas: 0.3 },
    ]);
    expect(load.byWaitEvent[0]).toEqual({
      waitEventType: 'Lock',
      waitEvent: 'transactionid',
      aas: 1,
    });
    expect(load.byStatement).toEqual([
      {
        queryId: '1',
        query: 'UPDATE t',
        aas: 1.5,
        waits: [
          { waitEventType: 'Lock', waitEvent: 'transactionid', aas: 1 },
          { waitEventType: 'CPU', waitEvent: 'CPU', aas: 0.5 },
        ],
      },
      {
        queryId: '2',
        query: 'SELECT t',
        aas: 0.3,
        waits: [{ waitEventType: 'IO', waitEvent: 'DataFileRead', aas: 0.3 }],
      },
      {
        queryId: null,
        query: null,
        aas: 0.2,
        waits: [{ waitEventType: 'Lock', waitEvent: 'tuple', aas: 0.2 }],
      },
    ]);
  });

  it('keeps the heaviest statements only', () => {
    expect(loadBreakdown(10, rows, 1).byStatement.map((s) => s.queryId)).toEqual(['1']);
  });

  it('is zero without samples', () => {
    expect(loadBreakdown(0, [], 10)).toEqual({
      averageActiveSessions: 0,
      byWaitEventType: [],
      byWaitEvent: [],
      byStatement: [],
    });
  });
});
