import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';

export class BackupItemResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: ['daily', 'weekly', 'on-demand', 'base'] }) kind!: string;
  @ApiProperty({ enum: ['full', 'diff', 'incr', 'snapshot'] }) type!: string;
  @ApiProperty({ example: 'pgbackrest' }) provider!: string;
  @ApiProperty({ nullable: true, type: String }) label!: string | null;
  @ApiProperty({ enum: ['running', 'succeeded', 'failed', 'expired'] }) status!: string;
  @ApiProperty({
    enum: ['unvalidated', 'good', 'bad'],
    description: 'good only once a validation restored it and every check passed',
  })
  verdict!: string;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) finishedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) startLsn!: string | null;
  @ApiProperty({ nullable: true, type: String }) stopLsn!: string | null;
  @ApiProperty({ nullable: true, type: Number }) sizeBytes!: number | null;
  @ApiProperty({ nullable: true, type: Number }) repoSizeBytes!: number | null;
  @ApiProperty({
    nullable: true,
    type: String,
    description: "pgBackRest: SHA-1 sealing the set's manifest; RDS: null",
  })
  checksum!: string | null;
  @ApiProperty({ nullable: true, type: Number }) durationMs!: number | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
}

export class BackupWithManifestResponseDto extends BackupItemResponseDto {
  @ApiFreeFormProperty({
    nullable: true,
    description: 'lsn, takenAt, markers, per-table row counts and checksums',
  })
  manifest!: Record<string, unknown> | null;
}

export class SettingsDriftDto {
  @ApiProperty() setting!: string;
  @ApiProperty() expected!: string;
  @ApiProperty() actual!: string;
}

export class BackupSettingsDto {
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) checkedAt!: string | null;
  @ApiProperty({ type: [SettingsDriftDto], description: 'empty when the settings match' })
  drift!: SettingsDriftDto[];
}

export class BackupPageResponseDto {
  @ApiProperty({ type: [BackupItemResponseDto] }) items!: BackupItemResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'opaque; null on the last page' })
  nextCursor!: string | null;
  @ApiProperty({
    type: BackupSettingsDto,
    description: "the provider's own backup settings against the configuration",
  })
  settings!: BackupSettingsDto;
}

export class ValidationStatusResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) backupId!: string;
  @ApiProperty({ enum: ['running', 'passed', 'failed'] }) status!: string;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) finishedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiFreeFormProperty({
    nullable: true,
    description: 'each check (restore test, integrity, performance, recovery time) and timings',
  })
  report!: Record<string, unknown> | null;
}

export class RestoreStatusResponseDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ enum: ['running', 'ready', 'failed', 'expired'] }) status!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) targetTime!: string | null;
  @ApiProperty({ nullable: true, type: String }) targetLsn!: string | null;
  @ApiProperty({ nullable: true, type: String }) host!: string | null;
  @ApiProperty({ nullable: true, type: Number }) port!: number | null;
  @ApiProperty({ type: [String] }) databases!: string[];
  @ApiProperty({ description: "the application's role on the copy (password never shown)" })
  user!: string;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) readyAt!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) expiresAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
}
