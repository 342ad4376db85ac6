/** A bench target and its outcome, as the reports list them. */
export interface Target {
  name: string;
  target: string;
  value: string;
  pass: boolean;
}

/** A plain-text table: the first `leftColumns` columns left-aligned, the rest right-aligned. */
export function table(headers: string[], rows: string[][], leftColumns = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The "Targets" table of a report. */
export function targetsTable(targets: readonly Target[], leftColumns = 1): string {
  return table(
    ['target', 'want', 'got', ''],
    targets.map((t) => [t.name, t.target, t.value, t.pass ? 'PASS' : 'FAIL']),
    leftColumns,
  );
}
