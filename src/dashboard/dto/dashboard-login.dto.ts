import { ApiProperty } from '@nestjs/swagger';
import { IsString, MaxLength, MinLength } from 'class-validator';

export class DashboardLoginDto {
  @ApiProperty({ description: 'An API key with scope ops:read (sent in the body, never a URL)' })
  @IsString()
  @MinLength(1)
  @MaxLength(512)
  key!: string;
}
