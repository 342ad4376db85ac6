import { ApiProperty } from '@nestjs/swagger';

export class ExplainBuffersDto {
  @ApiProperty() sharedHit!: number;
  @ApiProperty() sharedRead!: number;
}

export class ExplainSettingsDto {
  @ApiProperty() efSearch!: number;
  @ApiProperty() limit!: number;
  @ApiProperty() maxDistance!: number;
  @ApiProperty() filtered!: boolean;
}

export class ExplainReportResponseDto {
  @ApiProperty({ enum: ['hnsw', 'exact'] }) plan!: string;
  @ApiProperty({ description: 'the index scan came back short; the exact scan was explained' })
  exactFallback!: boolean;
  @ApiProperty() indexUsed!: boolean;
  @ApiProperty({ nullable: true, type: String }) indexName!: string | null;
  @ApiProperty({ type: [String] }) nodeTypes!: string[];
  @ApiProperty({ nullable: true, type: Number }) rowsScanned!: number | null;
  @ApiProperty() rowsRemovedByFilter!: number;
  @ApiProperty() rowsReturned!: number;
  @ApiProperty({ type: ExplainBuffersDto }) buffers!: ExplainBuffersDto;
  @ApiProperty() planningMs!: number;
  @ApiProperty() executionMs!: number;
  @ApiProperty({ type: ExplainSettingsDto }) settings!: ExplainSettingsDto;
  @ApiProperty({
    type: 'array',
    items: { type: 'object', additionalProperties: true },
    description: 'the EXPLAIN (FORMAT JSON) output',
  })
  explained!: unknown;
}
