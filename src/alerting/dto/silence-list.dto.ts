import { ApiProperty } from '@nestjs/swagger';
import { SilenceResponseDto } from './silence.dto.js';

export class SilenceListResponseDto {
  @ApiProperty({ type: [SilenceResponseDto] }) items!: SilenceResponseDto[];
  @ApiProperty({ nullable: true, type: String, description: 'always null: one page' })
  nextCursor!: string | null;
}
