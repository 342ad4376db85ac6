/** Monthly partition of audit_logs holding `month` (UTC): name and bounds. */
export function monthPartition(
  year: number,
  month: number,
): { name: string; from: string; to: string } {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const next = month === 12 ? { y: year + 1, m: 1 } : { y: year, m: month + 1 };
  return {
    name: `audit_logs_y${year}m${pad(month)}`,
    from: `${year}-${pad(month)}-01`,
    to: `${next.y}-${pad(next.m)}-01`,
  };
}

/** Partitions whose whole month ended before the retention cut-off (now − years). */
export function expiredPartitions(names: string[], now: Date, retentionYears: number): string[] {
  const cutoff = Date.UTC(now.getUTCFullYear() - retentionYears, now.getUTCMonth(), 1);
  return names.filter((name) => {
    const m = /^audit_logs_y(\d{4})m(\d{2})$/.exec(name);
    if (!m) {
      return false;
    }
    const end = Date.UTC(Number(m[1]), Number(m[2]), 1); // first day of the following month
    return end <= cutoff;
  });
}
