import type { SettingsDrift } from '../backup.types.js';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import type {
  BackupKind,
  BackupManifest,
  BackupStatus,
  BackupType,
  BackupVerdict,
} from '../backup.types.js';

export const REQUESTABLE_TYPES = ['full', 'diff', 'incr'] as const;
export type RequestableType = (typeof REQUESTABLE_TYPES)[number];

export class CreateBackupDto {
  @ApiPropertyOptional({
    enum: REQUESTABLE_TYPES,
    description: 'default diff; taken as a full (kind base) while the repository holds no full',
  })
  @IsOptional()
  @IsIn(REQUESTABLE_TYPES)
  type?: RequestableType;
}

export class QueryBackupsDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 20 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the previous page' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export interface BackupResponseDto {
  id: string;
  kind: BackupKind;
  type: BackupType;
  provider: string;
  label: string | null;
  status: BackupStatus;
  verdict: BackupVerdict;
  startedAt: string;
  finishedAt: string | null;
  startLsn: string | null;
  stopLsn: string | null;
  sizeBytes: number | null;
  repoSizeBytes: number | null;
  /** pgBackRest: SHA-1 sealing the set's manifest (which lists every file's SHA-1); RDS: null. */
  checksum: string | null;
  durationMs: number | null;
  error: string | null;
}

export interface BackupDetailResponseDto extends BackupResponseDto {
  manifest: BackupManifest | null;
}

export interface BackupListResponseDto {
  items: BackupResponseDto[];
  nextCursor: string | null;
  /**
   * The provider's own backup settings against the configuration (RDS automated backups:
   * retention and window), as last checked by this instance; `drift` empty when they match.
   */
  settings: { checkedAt: string | null; drift: SettingsDrift[] };
}
