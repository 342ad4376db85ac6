import { ApiProperty } from '@nestjs/swagger';
import { ApiFreeFormProperty } from '../../common/dto/free-form.js';

export class DashboardDataResponseDto {
  @ApiProperty() sampleSeconds!: number;
  @ApiProperty({ type: [Number], description: 'Unix milliseconds of each point, oldest first' })
  timestamps!: number[];
  @ApiFreeFormProperty({ isArray: true, description: 'each chart with its series' })
  charts!: Array<Record<string, unknown>>;
  @ApiFreeFormProperty({ isArray: true, description: 'active alerts' })
  alerts!: Array<Record<string, unknown>>;
  @ApiFreeFormProperty({ description: 'backup status' }) backups!: Record<string, unknown>;
  @ApiProperty({ format: 'date-time' }) generatedAt!: string;
}
