import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsISO8601, IsOptional, IsString, Length, Max, Min } from 'class-validator';

export const AUDIT_EVENT_TYPES = [
  'user_data_access',
  'data_modifications',
  'export_requests',
  'deletion_requests',
  'consent_changes',
] as const;

export class AuditQueryDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 100) subjectId?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 100) actor?: string;
  @ApiPropertyOptional({ enum: AUDIT_EVENT_TYPES })
  @IsOptional()
  @IsIn(AUDIT_EVENT_TYPES)
  eventType?: (typeof AUDIT_EVENT_TYPES)[number];
  @ApiPropertyOptional({ format: 'date-time' }) @IsOptional() @IsISO8601() from?: string;
  @ApiPropertyOptional({ format: 'date-time' }) @IsOptional() @IsISO8601() to?: string;
  @ApiPropertyOptional({ default: 100, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
  @ApiPropertyOptional({ description: 'nextCursor of the previous page (opaque)' })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  cursor?: string;
}

export const VERIFY_MODES = ['full', 'incremental'] as const;

export class VerifyQueryDto {
  @ApiPropertyOptional({
    enum: VERIFY_MODES,
    default: 'full',
    description:
      'full: every retained row, from the newest retention checkpoint; incremental: from the last verified checkpoint',
  })
  @IsOptional()
  @IsIn(VERIFY_MODES)
  mode?: (typeof VERIFY_MODES)[number];
}
