import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';
import { EMBEDDING_DIMENSIONS } from '../recipes.constants.js';
import { IsEmbedding } from './embedding.validator.js';

export class SearchFiltersDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) cuisine?: string;
  @ApiPropertyOptional({ type: [String], description: 'all must match' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Length(1, 60, { each: true })
  tags?: string[];
  @ApiPropertyOptional({ type: [String], description: 'all must match' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Length(1, 60, { each: true })
  dietary?: string[];
  @ApiPropertyOptional()
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(2_147_483_647) // total_minutes is an int4: a larger bound is a 500 in PostgreSQL
  maxTotalMinutes?: number;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() authorId?: string;
}

/** Exactly one of embedding, recipeId, text (checked in the service, naming the fields). */
export class SearchRecipesDto {
  @ApiPropertyOptional({
    type: [Number],
    minItems: EMBEDDING_DIMENSIONS,
    maxItems: EMBEDDING_DIMENSIONS,
  })
  @IsOptional()
  @IsEmbedding()
  embedding?: number[];

  @ApiPropertyOptional({
    format: 'uuid',
    description: 'more-like-this: the recipe itself is excluded',
  })
  @IsOptional()
  @IsUUID()
  recipeId?: string;

  @ApiPropertyOptional({
    maxLength: 8000,
    description: 'needs an embedding provider (EMBEDDINGS_PROVIDER)',
  })
  @IsOptional()
  @IsString()
  @Length(1, 8000)
  text?: string;

  @ApiPropertyOptional({ type: SearchFiltersDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => SearchFiltersDto)
  filters?: SearchFiltersDto;

  @ApiPropertyOptional({ default: 20, minimum: 1, maximum: 50 })
  @IsOptional()
  @IsInt()
  @Min(1)
  limit?: number;

  @ApiPropertyOptional({
    default: 0.8,
    minimum: 0,
    maximum: 2,
    description: 'cosine distance cut-off',
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(2)
  maxDistance?: number;
}

export class SimilarQueryDto {
  @ApiPropertyOptional({ default: 20 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  limit?: number;
  @ApiPropertyOptional({ default: 0.8 })
  @IsOptional()
  @Type(() => Number)
  @IsNumber()
  @Min(0)
  @Max(2)
  maxDistance?: number;
}

export class SearchHitDto {
  @ApiProperty() id!: string;
  @ApiProperty() title!: string;
  @ApiProperty() cuisine!: string;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: [String] }) dietary!: string[];
  @ApiProperty() totalMinutes!: number;
  @ApiProperty({ nullable: true, type: String }) authorId!: string | null;
  @ApiProperty({ description: 'cosine distance' }) distance!: number;
}

export class SearchResponseDto {
  @ApiProperty({ type: [SearchHitDto] }) items!: SearchHitDto[];
  @ApiProperty() tookMs!: number;
  @ApiProperty({ enum: ['hnsw', 'exact'] }) plan!: 'hnsw' | 'exact';
}
