import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { ReadRouterService } from '../database/read-router.service.js';
import type {
  ComplianceReport,
  ConsentChangeCount,
  DeletionRequestCounts,
  ExportRequestCounts,
} from './compliance-report.js';

/** Resource of a consent change in the audit log: `consent:<purpose>`. */
const CONSENT_RESOURCE_PREFIX = 'consent:';

export interface MonthCounts {
  exportRequests: ExportRequestCounts;
  deletionRequests: DeletionRequestCounts;
  exportsPurged: number;
  auditEvents: number;
  consentChanges: ConsentChangeCount[];
}

export interface StoredReport {
  report: ComplianceReport;
  csv: string;
  sha256: string;
}

export interface ReportListItem {
  month: string;
  generatedAt: string;
  sha256: string;
}

/** `compliance_reports`, and the counts a report is built from. */
@Injectable()
export class ComplianceRepository {
  constructor(private readonly router: ReadRouterService) {}

  /**
   * Every count of the half-open range [from, to), from one snapshot on the writer:
   * a report must not depend on how far a replica has replayed.
   */
  monthCounts(from: string, to: string): Promise<MonthCounts> {
    return this.router.readTransaction(
      async (m) => {
        await m.query(`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`);
        return {
          exportRequests: await this.exportCounts(m, from, to),
          deletionRequests: await this.deletionCounts(m, from, to),
          exportsPurged: await this.count(
            m,
            `SELECT count(*)::int AS n FROM gdpr_export_log
              WHERE purged_at >= $1::timestamptz AND purged_at < $2::timestamptz`,
            from,
            to,
          ),
          auditEvents: await this.count(
            m,
            `SELECT count(*)::int AS n FROM audit_logs
              WHERE occurred_at >= $1::timestamptz AND occurred_at < $2::timestamptz`,
            from,
            to,
          ),
          consentChanges: await this.consentChanges(m, from, to),
        };
      },
      { onWriter: true },
    );
  }

  private async exportCounts(
    m: EntityManager,
    from: string,
    to: string,
  ): Promise<ExportRequestCounts> {
    const rows: ExportRequestCounts[] = await m.query(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE format = 'json')::int AS json,
              count(*) FILTER (WHERE format = 'csv')::int AS csv,
              count(*) FILTER (WHERE status IN ('ready', 'expired'))::int AS ready,
              count(*) FILTER (WHERE status = 'failed')::int AS failed
         FROM gdpr_export_log
        WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz`,
      [from, to],
    );
    return rows[0];
  }

  private async deletionCounts(
    m: EntityManager,
    from: string,
    to: string,
  ): Promise<DeletionRequestCounts> {
    const rows: DeletionRequestCounts[] = await m.query(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE status = 'completed')::int AS completed,
              count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status IN ('queued', 'running'))::int AS pending,
              count(*) FILTER (WHERE verified IS TRUE)::int AS verified,
              count(*) FILTER (WHERE verified IS FALSE)::int AS "verificationFailed"
         FROM erasure_requests
        WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz`,
      [from, to],
    );
    return rows[0];
  }

  private async consentChanges(
    m: EntityManager,
    from: string,
    to: string,
  ): Promise<ConsentChangeCount[]> {
    const rows: Array<{ resource: string; action: string; n: number }> = await m.query(
      `SELECT resource, action, count(*)::int AS n
         FROM audit_logs
        WHERE event_type = 'consent_changes'
          AND occurred_at >= $1::timestamptz AND occurred_at < $2::timestamptz
        GROUP BY resource, action`,
      [from, to],
    );
    return rows
      .filter((r) => r.resource.startsWith(CONSENT_RESOURCE_PREFIX))
      .map((r) => ({
        purpose: r.resource.slice(CONSENT_RESOURCE_PREFIX.length),
        action: r.action,
        n: r.n,
      }));
  }

  private async count(m: EntityManager, sql: string, from: string, to: string): Promise<number> {
    const rows: Array<{ n: number }> = await m.query(sql, [from, to]);
    return rows[0].n;
  }

  /** Inserts the month's report, or replaces it when the month was built before. */
  async upsert(stored: StoredReport): Promise<void> {
    await this.router.write((m) =>
      m.query(
        `INSERT INTO compliance_reports (month, generated_at, report, csv, sha256)
         VALUES ($1, $2::timestamptz, $3::jsonb, $4, $5)
         ON CONFLICT (month) DO UPDATE
            SET generated_at = EXCLUDED.generated_at, report = EXCLUDED.report,
                csv = EXCLUDED.csv, sha256 = EXCLUDED.sha256`,
        [
          stored.report.month,
          stored.report.generatedAt,
          JSON.stringify(stored.report),
          stored.csv,
          stored.sha256,
        ],
      ),
    );
  }

  async getByMonth(month: string): Promise<StoredReport | null> {
    const rows: StoredReport[] = await this.router.read((m) =>
      m.query(`SELECT report, csv, sha256 FROM compliance_reports WHERE month = $1`, [month]),
    );
    return rows[0] ?? null;
  }

  /** Newest month first. */
  async list(): Promise<ReportListItem[]> {
    const rows: Array<{ month: string; generatedAt: Date; sha256: string }> =
      await this.router.read((m) =>
        m.query(
          `SELECT month, generated_at AS "generatedAt", sha256
             FROM compliance_reports ORDER BY month DESC`,
        ),
      );
    return rows.map((r) => ({ ...r, generatedAt: new Date(r.generatedAt).toISOString() }));
  }
}
