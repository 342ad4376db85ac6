import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Length,
  Max,
  Min,
} from 'class-validator';
import { Type } from 'class-transformer';
import { CONSENT_PURPOSES } from '../consent.purposes.js';

export class PublishPolicyDto {
  @ApiProperty({ enum: CONSENT_PURPOSES }) @IsIn(CONSENT_PURPOSES) purpose!: string;
  @ApiProperty({ maxLength: 50000 }) @IsString() @Length(1, 50_000) text!: string;
  @ApiPropertyOptional({ format: 'date-time', description: 'default: now' })
  @IsOptional()
  @IsISO8601()
  effectiveAt?: string;
}

export class ConsentHistoryQueryDto {
  @ApiPropertyOptional({ default: 100, minimum: 1, maximum: 500 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;
  @ApiPropertyOptional({ description: 'nextCursor of the previous page (opaque)' })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  cursor?: string;
}

export class PurposeParamDto {
  @ApiProperty({ enum: CONSENT_PURPOSES }) @IsIn(CONSENT_PURPOSES) purpose!: string;
}

export class SetConsentDto {
  @ApiProperty() @IsBoolean() granted!: boolean;
  @ApiProperty({ description: 'the exact policy version shown to the user' })
  @IsInt()
  @Min(1)
  @Max(2_147_483_647) // an int4 column: a larger one is a 500 in PostgreSQL
  policyVersion!: number;
  @ApiProperty({ example: 'web-settings' }) @IsString() @Length(1, 100) source!: string;
}

export interface PolicyVersion {
  version: number;
  textSha256: string;
  effectiveAt: string;
  text: string;
}

export interface PolicyResponse {
  purpose: string;
  currentVersion: number | null;
  versions: PolicyVersion[];
}

export interface EffectiveConsent {
  purpose: string;
  /** granted: a grant of the current version; outdated: granted an older version (re-consent needed). */
  state: 'granted' | 'withdrawn' | 'outdated' | 'none';
  granted: boolean;
  policyVersion: number | null;
  currentPolicyVersion: number | null;
  since: string | null;
}

export interface ConsentEvent {
  purpose: string;
  policyVersion: number;
  granted: boolean;
  source: string;
  actor: string | null;
  occurredAt: string;
}
