import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service.js';
import { invalidRequest, NotFoundError } from '../common/errors.js';
import { CONSENT_PURPOSES } from '../gdpr/consent.purposes.js';
import {
  ComplianceReport,
  consentStats,
  monthProblem,
  monthRange,
  renderCsv,
  reportDigest,
} from './compliance-report.js';
import { ComplianceRepository, StoredReport } from './compliance.repository.js';
import type {
  ComplianceReportList,
  ComplianceReportResponse,
} from './dto/compliance-report.dto.js';

/**
 * Monthly compliance reports (spec: compliance_reporting): export and erasure
 * requests, consent withdrawal rates and the audit chain's integrity for one UTC
 * calendar month. Stored as JSON and CSV with the SHA-256 of the JSON; building a
 * month again replaces its report.
 */
@Injectable()
export class ComplianceService {
  constructor(
    private readonly reports: ComplianceRepository,
    private readonly audit: AuditService,
  ) {}

  async build(month: string, now = new Date()): Promise<ComplianceReportResponse> {
    assertMonth(month, now);
    const { from, to } = monthRange(month);
    const counts = await this.reports.monthCounts(from, to);
    // Continues from the last verified checkpoint and leaves a new one for the next build.
    const integrity = await this.audit.verify({ mode: 'incremental', record: true });
    const report: ComplianceReport = {
      month,
      generatedAt: now.toISOString(),
      exportRequests: counts.exportRequests,
      deletionRequests: counts.deletionRequests,
      consent: consentStats(CONSENT_PURPOSES, counts.consentChanges),
      auditLogIntegrity: {
        valid: integrity.valid,
        mode: integrity.mode,
        verifiedFrom: integrity.start.from,
        checkpointSeq: integrity.start.seq,
        checkpointAt: integrity.start.at,
        fromSeq: integrity.fromSeq,
        toSeq: integrity.head.seq,
        rowsChecked: integrity.rowsChecked,
        firstBroken: integrity.firstBroken,
        eventsThisMonth: counts.auditEvents,
      },
      exportsPurged: counts.exportsPurged,
    };
    const sha256 = reportDigest(report);
    await this.reports.upsert({ report, csv: renderCsv(report, sha256), sha256 });
    return { ...report, sha256 };
  }

  async get(month: string, now = new Date()): Promise<StoredReport> {
    assertMonth(month, now);
    const stored = await this.reports.getByMonth(month);
    if (!stored) {
      throw new NotFoundError('compliance report', month);
    }
    return stored;
  }

  async list(): Promise<ComplianceReportList> {
    return { items: await this.reports.list(), nextCursor: null };
  }
}

function assertMonth(month: string, now: Date): void {
  const problem = monthProblem(month, now);
  if (problem) {
    throw invalidRequest({ field: 'month', message: problem });
  }
}
