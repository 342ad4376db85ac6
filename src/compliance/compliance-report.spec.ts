import {
  ComplianceReport,
  consentStats,
  csvField,
  monthProblem,
  monthRange,
  previousMonth,
  renderCsv,
  reportDigest,
  withdrawalRate,
} from './compliance-report.js';

const NOW = new Date(Date.UTC(2026, 10, 15, 12)); // 2026-11-15T12:00Z

describe(monthProblem.name, () => {
  it.each(['2026-11', '2026-01', '2025-12', '1999-07'])('accepts %s', (month) => {
    expect(monthProblem(month, NOW)).toBeNull();
  });

  it.each([
    '2026-13',
    '2026-00',
    '2026-1',
    '26-11',
    '2026-11-01',
    '2026/11',
    ' 2026-11',
    '',
    '0000-10',
  ])('rejects the malformed %j, naming month', (month) => {
    expect(monthProblem(month, NOW)).toBe('month must be a calendar month as YYYY-MM');
  });

  it.each(['0001-01', '0999-12', '1970-01'])('accepts the past month %s, from year 1', (month) => {
    expect(monthProblem(month, NOW)).toBeNull();
  });

  it.each(['2026-12', '2027-01', '9999-12'])('rejects the future month %s', (month) => {
    expect(monthProblem(month, NOW)).toMatch(/^month must not be in the future/);
  });

  it('uses the UTC month, not local time', () => {
    const lastInstant = new Date(Date.UTC(2026, 10, 30, 23, 59, 59, 999));
    expect(monthProblem('2026-12', lastInstant)).not.toBeNull();
    expect(monthProblem('2026-12', new Date(Date.UTC(2026, 11, 1)))).toBeNull();
  });
});

describe(monthRange.name, () => {
  it.each([
    ['2026-11', '2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z'],
    ['2026-12', '2026-12-01T00:00:00Z', '2027-01-01T00:00:00Z'],
    ['2024-02', '2024-02-01T00:00:00Z', '2024-03-01T00:00:00Z'],
    ['0999-12', '0999-12-01T00:00:00Z', '1000-01-01T00:00:00Z'],
  ])('%s → [%s, %s)', (month, from, to) => {
    expect(monthRange(month)).toEqual({ from, to });
  });
});

describe(previousMonth.name, () => {
  it.each([
    [new Date(Date.UTC(2026, 10, 1, 5)), '2026-10'],
    [new Date(Date.UTC(2026, 0, 1, 5)), '2025-12'],
    [new Date(Date.UTC(2026, 9, 31, 23, 59)), '2026-09'],
  ])('%s → %s', (now, month) => {
    expect(previousMonth(now)).toBe(month);
  });
});

describe(withdrawalRate.name, () => {
  it.each([
    [0, 0, null],
    [3, 0, 0],
    [0, 2, 1],
    [3, 1, 0.25],
    [2, 1, 0.3333],
    [1, 2, 0.6667],
  ])('grants %i, withdrawals %i → %p', (grants, withdrawals, rate) => {
    expect(withdrawalRate(grants, withdrawals)).toBe(rate);
  });
});

describe(consentStats.name, () => {
  it('lists every purpose in order, zeros where nothing happened, ignores unknown purposes', () => {
    expect(
      consentStats(
        ['a', 'b', 'c'],
        [
          { purpose: 'b', action: 'grant', n: 3 },
          { purpose: 'b', action: 'withdraw', n: 1 },
          { purpose: 'c', action: 'withdraw', n: 2 },
          { purpose: 'zzz', action: 'grant', n: 9 },
        ],
      ),
    ).toEqual([
      { purpose: 'a', grants: 0, withdrawals: 0, withdrawalRate: null },
      { purpose: 'b', grants: 3, withdrawals: 1, withdrawalRate: 0.25 },
      { purpose: 'c', grants: 0, withdrawals: 2, withdrawalRate: 1 },
    ]);
  });
});

describe(csvField.name, () => {
  it.each<[string | number | boolean | null, string]>([
    [42, '42'],
    [0.25, '0.25'],
    [true, 'true'],
    [null, ''],
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['cr\r\nlf', '"cr\r\nlf"'],
    ['=SUM(A1)', "'=SUM(A1)"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@cmd', "'@cmd"],
    ['=1,"x"', `"'=1,""x"""`],
  ])('%j → %j', (value, field) => {
    expect(csvField(value)).toBe(field);
  });

  it('writes negative numbers as numbers', () => {
    expect(csvField(-1)).toBe('-1');
  });
});

describe(renderCsv.name, () => {
  const report: ComplianceReport = {
    month: '2026-10',
    generatedAt: '2026-11-01T05:00:00.000Z',
    exportRequests: { total: 5, json: 3, csv: 2, ready: 4, failed: 1 },
    deletionRequests: {
      total: 4,
      completed: 2,
      failed: 1,
      pending: 1,
      verified: 2,
      verificationFailed: 0,
    },
    consent: [
      { purpose: 'analytics', grants: 3, withdrawals: 1, withdrawalRate: 0.25 },
      { purpose: 'marketing_email', grants: 0, withdrawals: 0, withdrawalRate: null },
    ],
    auditLogIntegrity: {
      valid: false,
      mode: 'incremental',
      verifiedFrom: 'verified_checkpoint',
      checkpointSeq: 500,
      checkpointAt: '2026-10-01T05:00:00.000Z',
      fromSeq: 501,
      toSeq: 520,
      rowsChecked: 10,
      firstBroken: { seq: 511, reason: 'row 511 is missing (next is 512), "gap"' },
      eventsThisMonth: 7,
    },
    exportsPurged: 6,
  };

  it('writes the documented layout, one row per number, CRLF line ends', () => {
    const sha = 'a'.repeat(64);
    expect(renderCsv(report, sha).split('\r\n')).toEqual([
      'section,metric,key,value',
      'meta,month,,2026-10',
      'meta,generated_at,,2026-11-01T05:00:00.000Z',
      `meta,report_sha256,,${sha}`,
      'data_export_requests,total,,5',
      'data_export_requests,json,,3',
      'data_export_requests,csv,,2',
      'data_export_requests,ready,,4',
      'data_export_requests,failed,,1',
      'data_deletion_requests,total,,4',
      'data_deletion_requests,completed,,2',
      'data_deletion_requests,failed,,1',
      'data_deletion_requests,pending,,1',
      'data_deletion_requests,verified,,2',
      'data_deletion_requests,verification_failed,,0',
      'consent,grants,analytics,3',
      'consent,withdrawals,analytics,1',
      'consent,withdrawal_rate,analytics,0.25',
      'consent,grants,marketing_email,0',
      'consent,withdrawals,marketing_email,0',
      'consent,withdrawal_rate,marketing_email,',
      'audit_log_integrity,valid,,false',
      'audit_log_integrity,mode,,incremental',
      'audit_log_integrity,verified_from,,verified_checkpoint',
      'audit_log_integrity,checkpoint_seq,,500',
      'audit_log_integrity,checkpoint_at,,2026-10-01T05:00:00.000Z',
      'audit_log_integrity,from_seq,,501',
      'audit_log_integrity,to_seq,,520',
      'audit_log_integrity,rows_checked,,10',
      'audit_log_integrity,first_broken_seq,,511',
      'audit_log_integrity,first_broken_reason,,"row 511 is missing (next is 512), ""gap"""',
      'audit_log_integrity,events_this_month,,7',
      'data_exports,purged,,6',
      '',
    ]);
  });

  it('digests the report independently of key order', () => {
    const reordered = Object.fromEntries(
      Object.entries(report).reverse(),
    ) as unknown as ComplianceReport;
    expect(reportDigest(report)).toMatch(/^[0-9a-f]{64}$/);
    expect(reportDigest(reordered)).toBe(reportDigest(report));
    expect(reportDigest({ ...report, exportsPurged: 7 })).not.toBe(reportDigest(report));
  });
});
