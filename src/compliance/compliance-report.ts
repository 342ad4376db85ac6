import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/audit-hash.js';

/** `YYYY-MM`, months 01–12. */
/** YYYY-MM with a year from 0001: there is no year 0 (PostgreSQL refuses 0000-01-01). */
export const MONTH_PATTERN = /^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$/;

export interface ExportRequestCounts {
  total: number;
  json: number;
  csv: number;
  /** Produced: still downloadable, or since expired after the retention period. */
  ready: number;
  failed: number;
}

export interface DeletionRequestCounts {
  total: number;
  completed: number;
  failed: number;
  /** Queued or running. */
  pending: number;
  verified: number;
  verificationFailed: number;
}

export interface ConsentPurposeStats {
  purpose: string;
  grants: number;
  withdrawals: number;
  /** withdrawals / (grants + withdrawals), 4 decimals; null when the purpose saw no event. */
  withdrawalRate: number | null;
}

/**
 * The audit chain's verification when the report was built. Incremental: the rows
 * `fromSeq`..`toSeq` were checked now, continuing from the checkpoint `verifiedFrom`
 * names (rows up to `checkpointSeq` were checked when it was written, or were dropped
 * by retention and sealed), so a log of years is not walked on every build.
 */
export interface AuditLogIntegrity {
  /** The chain up to `toSeq` holds. */
  valid: boolean;
  mode: 'full' | 'incremental';
  verifiedFrom: 'genesis' | 'retention_checkpoint' | 'verified_checkpoint';
  checkpointSeq: number;
  /** When that checkpoint was written (null from genesis). */
  checkpointAt: string | null;
  fromSeq: number;
  toSeq: number;
  rowsChecked: number;
  firstBroken: { seq: number; reason: string } | null;
  eventsThisMonth: number;
}

/** The monthly compliance report. Counts only: no personal data. */
export interface ComplianceReport {
  month: string;
  generatedAt: string;
  exportRequests: ExportRequestCounts;
  deletionRequests: DeletionRequestCounts;
  consent: ConsentPurposeStats[];
  auditLogIntegrity: AuditLogIntegrity;
  exportsPurged: number;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The UTC calendar month `date` falls in, as `YYYY-MM`. */
export function monthOf(date: Date): string {
  return `${date.getUTCFullYear()}-${pad2(date.getUTCMonth() + 1)}`;
}

/** The UTC calendar month before the one `now` falls in. */
export function previousMonth(now: Date): string {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth(); // 0-based: the previous month's 1-based number
  return m === 0 ? `${y - 1}-12` : `${y}-${pad2(m)}`;
}

/** Why `month` cannot be reported on at `now`, or null when it can. */
export function monthProblem(month: string, now: Date): string | null {
  if (!MONTH_PATTERN.test(month)) {
    return 'month must be a calendar month as YYYY-MM';
  }
  // Zero-padded YYYY-MM strings compare like the months they name.
  if (month > monthOf(now)) {
    return `month must not be in the future (latest: ${monthOf(now)})`;
  }
  return null;
}

/** Bounds of a valid `YYYY-MM` month in UTC, as timestamps: [from, to). */
export function monthRange(month: string): { from: string; to: string } {
  const year = Number(month.slice(0, 4));
  const m = Number(month.slice(5, 7));
  const next =
    m === 12 ? `${String(year + 1).padStart(4, '0')}-01` : `${month.slice(0, 4)}-${pad2(m + 1)}`;
  return { from: `${month}-01T00:00:00Z`, to: `${next}-01T00:00:00Z` };
}

export function withdrawalRate(grants: number, withdrawals: number): number | null {
  const events = grants + withdrawals;
  return events === 0 ? null : Math.round((withdrawals / events) * 10_000) / 10_000;
}

/** Consent changes of one purpose and action ('grant' | 'withdraw') in a month. */
export interface ConsentChangeCount {
  purpose: string;
  action: string;
  n: number;
}

/** One entry per purpose, in the given order, zeros where a purpose saw no event. */
export function consentStats(
  purposes: readonly string[],
  changes: ConsentChangeCount[],
): ConsentPurposeStats[] {
  return purposes.map((purpose) => {
    const n = (action: string): number =>
      changes
        .filter((c) => c.purpose === purpose && c.action === action)
        .reduce((sum, c) => sum + c.n, 0);
    const grants = n('grant');
    const withdrawals = n('withdraw');
    return { purpose, grants, withdrawals, withdrawalRate: withdrawalRate(grants, withdrawals) };
  });
}

/** SHA-256 (hex) of the report's canonical JSON (object keys sorted at every level). */
export function reportDigest(report: ComplianceReport): string {
  return createHash('sha256').update(canonicalJson(report), 'utf8').digest('hex');
}

export type CsvCell = string | number | boolean | null;

export const CSV_HEADER = ['section', 'metric', 'key', 'value'] as const;

/**
 * One RFC 4180 field: quoted when it holds a quote, comma or line break (quotes
 * doubled). Text starting with = + - @ or a tab/CR gets a leading apostrophe so a
 * spreadsheet never runs it as a formula; numbers are written as they are.
 */
export function csvField(value: CsvCell): string {
  if (value === null) {
    return '';
  }
  let text = String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) {
    text = `'${text}`;
  }
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * The report as `section,metric,key,value` rows: one row per number; `key` is the
 * purpose for consent rows and empty elsewhere; an absent value (a rate with no
 * events, no broken link) is an empty field.
 */
export function csvRows(report: ComplianceReport, sha256: string): CsvCell[][] {
  const e = report.exportRequests;
  const d = report.deletionRequests;
  const a = report.auditLogIntegrity;
  return [
    ['meta', 'month', '', report.month],
    ['meta', 'generated_at', '', report.generatedAt],
    ['meta', 'report_sha256', '', sha256],
    ['data_export_requests', 'total', '', e.total],
    ['data_export_requests', 'json', '', e.json],
    ['data_export_requests', 'csv', '', e.csv],
    ['data_export_requests', 'ready', '', e.ready],
    ['data_export_requests', 'failed', '', e.failed],
    ['data_deletion_requests', 'total', '', d.total],
    ['data_deletion_requests', 'completed', '', d.completed],
    ['data_deletion_requests', 'failed', '', d.failed],
    ['data_deletion_requests', 'pending', '', d.pending],
    ['data_deletion_requests', 'verified', '', d.verified],
    ['data_deletion_requests', 'verification_failed', '', d.verificationFailed],
    ...report.consent.flatMap((c): CsvCell[][] => [
      ['consent', 'grants', c.purpose, c.grants],
      ['consent', 'withdrawals', c.purpose, c.withdrawals],
      ['consent', 'withdrawal_rate', c.purpose, c.withdrawalRate],
    ]),
    ['audit_log_integrity', 'valid', '', a.valid],
    ['audit_log_integrity', 'mode', '', a.mode],
    ['audit_log_integrity', 'verified_from', '', a.verifiedFrom],
    ['audit_log_integrity', 'checkpoint_seq', '', a.checkpointSeq],
    ['audit_log_integrity', 'checkpoint_at', '', a.checkpointAt],
    ['audit_log_integrity', 'from_seq', '', a.fromSeq],
    ['audit_log_integrity', 'to_seq', '', a.toSeq],
    ['audit_log_integrity', 'rows_checked', '', a.rowsChecked],
    ['audit_log_integrity', 'first_broken_seq', '', a.firstBroken?.seq ?? null],
    ['audit_log_integrity', 'first_broken_reason', '', a.firstBroken?.reason ?? null],
    ['audit_log_integrity', 'events_this_month', '', a.eventsThisMonth],
    ['data_exports', 'purged', '', report.exportsPurged],
  ];
}

/** CSV text, CRLF line ends (RFC 4180), header first. */
export function renderCsv(report: ComplianceReport, sha256: string): string {
  return [CSV_HEADER as readonly CsvCell[], ...csvRows(report, sha256)]
    .map((row) => row.map(csvField).join(','))
    .join('\r\n')
    .concat('\r\n');
}
