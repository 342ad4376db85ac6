import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';
import { EXPORT_FORMATS } from './gdpr.dto.js';

export class ExportStatusResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: EXPORT_FORMATS }) format!: string;
  @ApiProperty({ enum: ['queued', 'running', 'ready', 'failed', 'expired'] }) status!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) completedAt!: string | null;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @ApiProperty({ nullable: true, type: Number }) sizeBytes!: number | null;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'SHA-256 of the file as downloaded (after decryption)',
  })
  sha256!: string | null;
  @ApiProperty({
    nullable: true,
    type: 'object',
    additionalProperties: { type: 'number' },
    description: 'rows exported per table',
  })
  itemCounts!: Record<string, number> | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'only when ready: a single-use URL, valid until downloadExpiresAt',
  })
  downloadUrl!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' })
  downloadExpiresAt!: string | null;
}

export class ErasureStatusResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: ['queued', 'running', 'completed', 'failed'] }) status!: string;
  @ApiProperty() attempts!: number;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({ nullable: true, type: Boolean }) verified!: boolean | null;
  @ApiFreeFormProperty({
    nullable: true,
    description:
      'the verification report: ok, verifiedAt, deleted (rows per table), tables (each checked, rowsLeft: 0), keystore, caches',
  })
  report!: Record<string, unknown> | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) completedAt!: string | null;
}
