import { ApiProperty } from '@nestjs/swagger';
import { CONSENT_PURPOSES } from '../consent.purposes.js';

export class PolicyVersionResponseDto {
  @ApiProperty() version!: number;
  @ApiProperty() textSha256!: string;
  @ApiProperty({ format: 'date-time' }) effectiveAt!: string;
  @ApiProperty() text!: string;
}

export class PolicyResponseDto {
  @ApiProperty({ enum: CONSENT_PURPOSES }) purpose!: string;
  @ApiProperty({ nullable: true, type: Number }) currentVersion!: number | null;
  @ApiProperty({ type: [PolicyVersionResponseDto] }) versions!: PolicyVersionResponseDto[];
}

export class PolicyListResponseDto {
  @ApiProperty({ type: [PolicyResponseDto] }) items!: PolicyResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'always null: one page' })
  nextCursor!: string | null;
}

export class EffectiveConsentResponseDto {
  @ApiProperty({ enum: CONSENT_PURPOSES }) purpose!: string;
  @ApiProperty({
    enum: ['granted', 'withdrawn', 'outdated', 'none'],
    description: 'outdated: granted an older policy version (re-consent needed)',
  })
  state!: string;
  @ApiProperty() granted!: boolean;
  @ApiProperty({ nullable: true, type: Number }) policyVersion!: number | null;
  @ApiProperty({ nullable: true, type: Number }) currentPolicyVersion!: number | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) since!: string | null;
}

export class EffectiveConsentListResponseDto {
  @ApiProperty({ type: [EffectiveConsentResponseDto] }) items!: EffectiveConsentResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'always null: one page' })
  nextCursor!: string | null;
}

export class ConsentEventResponseDto {
  @ApiProperty({ enum: CONSENT_PURPOSES }) purpose!: string;
  @ApiProperty() policyVersion!: number;
  @ApiProperty() granted!: boolean;
  @ApiProperty() source!: string;
  @ApiProperty({ nullable: true, type: String }) actor!: string | null;
  @ApiProperty({ format: 'date-time' }) occurredAt!: string;
}

export class ConsentHistoryResponseDto {
  @ApiProperty({ type: [ConsentEventResponseDto] }) items!: ConsentEventResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'opaque; null on the last page' })
  nextCursor!: string | null;
}
