import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';

/** The monthly compliance report (counts only, no personal data). */
export class ComplianceReportResponseDto {
  @ApiProperty({ example: '2026-10' }) month!: string;
  @ApiProperty({ format: 'date-time' }) generatedAt!: string;
  @ApiFreeFormProperty({ description: 'total, json, csv, ready, failed' })
  exportRequests!: Record<string, number>;
  @ApiFreeFormProperty({
    description: 'total, completed, failed, pending, verified, verificationFailed',
  })
  deletionRequests!: Record<string, number>;
  @ApiFreeFormProperty({
    isArray: true,
    description: 'per purpose: grants, withdrawals, withdrawalRate',
  })
  consent!: Array<Record<string, unknown>>;
  @ApiFreeFormProperty({ description: 'the audit chain verification when the report was built' })
  auditLogIntegrity!: Record<string, unknown>;
  @ApiProperty() exportsPurged!: number;
  @ApiProperty({ description: 'SHA-256 of the canonical JSON of the report without this field' })
  sha256!: string;
}

export class ComplianceReportSummaryDto {
  @ApiProperty({ example: '2026-10' }) month!: string;
  @ApiProperty({ format: 'date-time' }) generatedAt!: string;
  @ApiProperty() sha256!: string;
}

export class ComplianceReportListResponseDto {
  @ApiProperty({ type: [ComplianceReportSummaryDto] }) items!: ComplianceReportSummaryDto[];
  @ApiProperty({ nullable: true, type: String, description: 'always null: one report a month' })
  nextCursor!: string | null;
}
