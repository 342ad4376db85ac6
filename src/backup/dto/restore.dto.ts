import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsOptional, Matches } from 'class-validator';

export class CreateRestoreDto {
  @ApiPropertyOptional({
    description: 'restore up to this time (ISO 8601); exactly one of targetTime, targetLsn',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  targetTime?: string;

  @ApiPropertyOptional({ description: 'restore up to this WAL position (e.g. 0/7002060)' })
  @IsOptional()
  @Matches(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, {
    message: 'targetLsn must be an LSN like 0/7002060',
  })
  targetLsn?: string;
}

export interface RestoreResponseDto {
  id: string;
  status: string;
  targetTime: string | null;
  targetLsn: string | null;
  host: string | null;
  port: number | null;
  databases: string[];
  /** The application's role on the restored copy (its password is the live one; never shown). */
  user: string;
  startedAt: string;
  readyAt: string | null;
  expiresAt: string | null;
  error: string | null;
}
