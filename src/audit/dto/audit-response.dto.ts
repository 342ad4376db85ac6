import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';
import { AUDIT_EVENT_TYPES, VERIFY_MODES } from './audit.dto.js';

export class AuditItemResponseDto {
  @ApiProperty({ description: 'position in the hash chain' }) seq!: number;
  @ApiProperty({ format: 'date-time' }) occurredAt!: string;
  @ApiProperty({ enum: AUDIT_EVENT_TYPES }) eventType!: string;
  @ApiProperty({ nullable: true, type: String }) actor!: string | null;
  @ApiProperty({ nullable: true, type: String }) subjectId!: string | null;
  @ApiProperty() resource!: string;
  @ApiProperty() action!: string;
  @ApiProperty({ nullable: true, type: String }) requestId!: string | null;
  @ApiFreeFormProperty({ nullable: true }) details!: Record<string, unknown> | null;
  @ApiProperty() prevHash!: string;
  @ApiProperty() hash!: string;
}

export class AuditListResponseDto {
  @ApiProperty({ type: [AuditItemResponseDto] }) items!: AuditItemResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'opaque; null on the last page' })
  nextCursor!: string | null;
}

export class ChainPointDto {
  @ApiProperty() seq!: number;
  @ApiProperty() hash!: string;
}

export class BrokenLinkDto {
  @ApiProperty() seq!: number;
  @ApiProperty() reason!: string;
}

export class VerifyStartDto {
  @ApiProperty({ enum: ['genesis', 'retention_checkpoint', 'verified_checkpoint'] })
  from!: string;
  @ApiProperty() seq!: number;
  @ApiProperty() hash!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) at!: string | null;
}

export class VerifyReportResponseDto {
  @ApiProperty() valid!: boolean;
  @ApiProperty({ enum: VERIFY_MODES }) mode!: string;
  @ApiProperty({ type: VerifyStartDto, description: 'where the walk started' })
  start!: VerifyStartDto;
  @ApiProperty() fromSeq!: number;
  @ApiProperty() rowsChecked!: number;
  @ApiProperty({ type: ChainPointDto }) head!: ChainPointDto;
  @ApiProperty({ nullable: true, type: BrokenLinkDto }) firstBroken!: BrokenLinkDto | null;
  @ApiProperty() digestsChecked!: number;
}
