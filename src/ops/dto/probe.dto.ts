import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';

export class CreateProbeDto {
  @ApiPropertyOptional({ description: 'Free text kept with the probe row', maxLength: 200 })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  note?: string;
}

export class ServedByDto {
  @ApiProperty({ enum: ['primary', 'replica'] }) role!: 'primary' | 'replica';
  @ApiProperty({ description: 'Server port the SQL ran on (inet_server_port())' }) port!: number;
  @ApiProperty() inRecovery!: boolean;
}

export class ProbeResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() note!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ type: ServedByDto }) servedBy!: ServedByDto;
}

export class FailoverRequestDto {
  @ApiPropertyOptional({ description: 'node (host:port) to promote; default: the best replica' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9_.-]+:\d{1,5}$/, { message: 'target must be a node as host:port' })
  target?: string;
}
