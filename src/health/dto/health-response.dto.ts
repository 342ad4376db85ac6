import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';

export class LiveResponseDto {
  @ApiProperty({ enum: ['ok'] }) status!: 'ok';
}

/** @nestjs/terminus' report: one entry per check (primary, each replica, Redis, PgBouncer). */
export class ReadinessResponseDto {
  @ApiProperty({ enum: ['ok', 'error', 'shutting_down'] }) status!: string;
  @ApiFreeFormProperty({ description: 'checks that are up (a degraded one says so)' })
  info!: Record<string, unknown>;
  @ApiFreeFormProperty({ description: 'checks that are down' }) error!: Record<string, unknown>;
  @ApiFreeFormProperty({ description: 'every check' }) details!: Record<string, unknown>;
}
