import { expiredPartitions, monthPartition } from './audit-partitions.js';

describe(monthPartition.name, () => {
  it.each([
    [2026, 11, { name: 'audit_logs_y2026m11', from: '2026-11-01', to: '2026-12-01' }],
    [2026, 12, { name: 'audit_logs_y2026m12', from: '2026-12-01', to: '2027-01-01' }],
  ])('%i-%i', (y, m, expected) => {
    expect(monthPartition(y, m)).toEqual(expected);
  });
});

describe(expiredPartitions.name, () => {
  it('keeps the last 7 years of whole months and ignores other tables', () => {
    const now = new Date(Date.UTC(2026, 10, 26));
    expect(
      expiredPartitions(
        ['audit_logs_y2019m10', 'audit_logs_y2019m11', 'audit_logs_y2019m12', 'audit_logs_default'],
        now,
        7,
      ),
    ).toEqual(['audit_logs_y2019m10']);
  });
});
