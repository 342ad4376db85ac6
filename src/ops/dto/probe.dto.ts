import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';

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
