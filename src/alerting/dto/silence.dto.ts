import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsISO8601,
  IsObject,
  IsOptional,
  IsString,
  Length,
  Matches,
  ValidateNested,
} from 'class-validator';

export class SilenceMatcherDto {
  @ApiProperty({ description: 'label name: alertname, severity', example: 'alertname' })
  @Matches(/^[a-zA-Z_][a-zA-Z0-9_]{0,62}$/, { message: 'name must be a label name' })
  name!: string;

  @ApiProperty({ description: 'exact value of the label', example: 'backup_failed' })
  @IsString()
  @Length(1, 200)
  value!: string;
}

export class CreateSilenceDto {
  @ApiProperty({ type: [SilenceMatcherDto], description: 'every matcher must match (AND)' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  @IsObject({ each: true }) // ValidateNested passes an array item that is itself an array
  @ValidateNested({ each: true })
  @Type(() => SilenceMatcherDto)
  matchers!: SilenceMatcherDto[];

  @ApiPropertyOptional({ description: 'ISO 8601; default now' })
  @IsOptional()
  @IsISO8601({ strict: true })
  startsAt?: string;

  @ApiProperty({ description: 'ISO 8601, after startsAt and in the future' })
  @IsISO8601({ strict: true })
  endsAt!: string;

  @ApiProperty({ description: 'why, for whoever reads the silence later' })
  @IsString()
  @Length(1, 500)
  comment!: string;
}

export class SilenceResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty({ type: [SilenceMatcherDto] }) matchers!: SilenceMatcherDto[];
  @ApiProperty() startsAt!: string;
  @ApiProperty() endsAt!: string;
  @ApiProperty({ description: 'id of the API key that created it' }) createdBy!: string;
  @ApiProperty() comment!: string;
  @ApiProperty() createdAt!: string;
}

export class AlertResponseDto {
  @ApiProperty() alert!: string;
  @ApiProperty() severity!: string;
  @ApiProperty({ enum: ['pending', 'firing', 'resolved'] }) state!: string;
  @ApiProperty({ nullable: true, type: Number }) value!: number | null;
  @ApiProperty() comparison!: string;
  @ApiProperty() threshold!: number;
  @ApiProperty({ nullable: true, type: String }) pendingSince!: string | null;
  @ApiProperty({ nullable: true, type: String }) firingSince!: string | null;
  @ApiProperty({ nullable: true, type: String }) resolvedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) lastNotifiedAt!: string | null;
  @ApiProperty() evaluatedAt!: string;
  @ApiProperty({ type: [String], description: 'ids of the active silences matching it' })
  silencedBy!: string[];
}

export class AlertsResponseDto {
  @ApiProperty({ type: [AlertResponseDto] }) active!: AlertResponseDto[];
  @ApiProperty({ type: [AlertResponseDto], description: 'resolved within ALERTING_RECENT_HOURS' })
  recent!: AlertResponseDto[];
}
