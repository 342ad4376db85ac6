import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Matches } from 'class-validator';
import { ComplianceReport, MONTH_PATTERN } from '../compliance-report.js';

export const REPORT_FORMATS = ['json', 'csv'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

const MONTH_MESSAGE = 'month must be a calendar month as YYYY-MM';

export class QueryComplianceReportDto {
  @ApiPropertyOptional({ example: '2026-10', description: 'absent: list the stored reports' })
  @IsOptional()
  @IsString()
  @Matches(MONTH_PATTERN, { message: MONTH_MESSAGE })
  month?: string;
  @ApiPropertyOptional({ enum: REPORT_FORMATS, default: 'json' })
  @IsOptional()
  @IsIn(REPORT_FORMATS)
  format?: ReportFormat;
}

export class CreateComplianceReportDto {
  @ApiProperty({ example: '2026-10', description: 'a UTC calendar month, not in the future' })
  @IsString()
  @Matches(MONTH_PATTERN, { message: MONTH_MESSAGE })
  month!: string;
}

/** The report and the SHA-256 of its canonical JSON (the report without this field). */
export type ComplianceReportResponse = ComplianceReport & { sha256: string };

export interface ComplianceReportList {
  items: Array<{ month: string; generatedAt: string; sha256: string }>;
  /** One report a month: the list is one page. */
  nextCursor: null;
}
