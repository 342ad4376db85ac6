import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsString, Matches } from 'class-validator';

export const EXPORT_FORMATS = ['json', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export class CreateExportDto {
  @ApiProperty({ enum: EXPORT_FORMATS }) @IsIn(EXPORT_FORMATS) format!: ExportFormat;
}

export class DownloadQueryDto {
  @ApiProperty({ description: 'the single-use token from GET /v1/exports/:id' })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{43}$/, { message: 'token must be the 43-character token issued' })
  token!: string;
}

export interface ExportResponseDto {
  id: string;
  format: ExportFormat;
  status: 'queued' | 'running' | 'ready' | 'failed' | 'expired';
  createdAt: string;
  completedAt: string | null;
  expiresAt: string;
  sizeBytes: number | null;
  /** SHA-256 of the file as downloaded (after decryption). */
  sha256: string | null;
  itemCounts: Record<string, number> | null;
  error: string | null;
  /** Only when ready: a single-use URL, valid until `downloadExpiresAt`. */
  downloadUrl: string | null;
  downloadExpiresAt: string | null;
}

export interface VerificationReport {
  ok: boolean;
  verifiedAt: string;
  deleted: Record<string, number>;
  tables: Array<{ table: string; column: string; declaredBy: string | null; rowsLeft: number }>;
  keystore: { database: string; keysLeft: number };
  caches: { entriesLeft: number; purgeErrors: string[] };
}

export interface ErasureResponseDto {
  id: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  attempts: number;
  error: string | null;
  verified: boolean | null;
  report: VerificationReport | null;
  createdAt: string;
  completedAt: string | null;
}
