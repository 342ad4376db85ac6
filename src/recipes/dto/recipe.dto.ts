import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  MaxLength,
  Min,
  Max,
  ArrayMinSize,
  ValidateNested,
} from 'class-validator';
import { BATCH_SIZE, EMBEDDING_DIMENSIONS } from '../recipes.constants.js';
import { IsEmbedding } from './embedding.validator.js';

export class CreateRecipeDto {
  @ApiProperty({ maxLength: 300 }) @IsString() @Length(1, 300) title!: string;
  @ApiPropertyOptional({ maxLength: 10000 })
  @IsOptional()
  @IsString()
  @MaxLength(10_000)
  description?: string;
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMaxSize(200)
  @IsString({ each: true })
  @MaxLength(500, { each: true })
  ingredients!: string[];
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMaxSize(200)
  @IsString({ each: true })
  @MaxLength(5000, { each: true })
  steps!: string[];
  @ApiProperty({ maxLength: 60 }) @IsString() @Length(1, 60) cuisine!: string;
  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(50)
  @IsString({ each: true })
  @Length(1, 60, { each: true })
  tags?: string[];
  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Length(1, 60, { each: true })
  dietary?: string[];
  @ApiProperty({ minimum: 0, maximum: 100000 })
  @IsInt()
  @Min(0)
  @Max(100_000)
  totalMinutes!: number;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() authorId?: string;
  @ApiPropertyOptional({
    type: [Number],
    minItems: EMBEDDING_DIMENSIONS,
    maxItems: EMBEDDING_DIMENSIONS,
  })
  @IsOptional()
  @IsEmbedding()
  embedding?: number[];
}

export class UpdateRecipeDto extends PartialType(CreateRecipeDto) {}

export class BatchRecipeDto extends CreateRecipeDto {
  @ApiPropertyOptional({ format: 'uuid', description: 'Upsert key; a new id is made when absent' })
  @IsOptional()
  @IsUUID()
  id?: string;
}

export class BatchUpsertRecipesDto {
  @ApiProperty({ type: [BatchRecipeDto], maxItems: BATCH_SIZE })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(BATCH_SIZE)
  @IsObject({ each: true }) // ValidateNested passes an array item that is itself an array
  @ValidateNested({ each: true })
  @Type(() => BatchRecipeDto)
  items!: BatchRecipeDto[];
}

export class SetEmbeddingDto {
  @ApiProperty({ type: [Number], minItems: EMBEDDING_DIMENSIONS, maxItems: EMBEDDING_DIMENSIONS })
  @IsEmbedding()
  embedding!: number[];
}

export class ListRecipesQueryDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) cuisine?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) tag?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) dietary?: string;
  @ApiPropertyOptional({ format: 'uuid' }) @IsOptional() @IsUUID() authorId?: string;
  @ApiPropertyOptional()
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(2_147_483_647) // total_minutes is an int4: a larger bound is a 500 in PostgreSQL
  maxTotalMinutes?: number;
  @ApiPropertyOptional({ default: 20, maximum: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;
  @ApiPropertyOptional({ description: 'Opaque cursor from nextCursor' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  cursor?: string;
}

export class RecipeResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() title!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ type: [String] }) ingredients!: string[];
  @ApiProperty({ type: [String] }) steps!: string[];
  @ApiProperty() cuisine!: string;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: [String] }) dietary!: string[];
  @ApiProperty() totalMinutes!: number;
  @ApiProperty({ nullable: true, type: String }) authorId!: string | null;
  @ApiProperty() hasEmbedding!: boolean;
  @ApiProperty() version!: number;
  @ApiProperty() createdAt!: string;
  @ApiProperty() updatedAt!: string;
}

export class RecipeListResponseDto {
  @ApiProperty({ type: [RecipeResponseDto] }) items!: RecipeResponseDto[];
  @ApiProperty({ nullable: true, type: String }) nextCursor!: string | null;
}

export class BatchUpsertResponseDto {
  @ApiProperty() count!: number;
  @ApiProperty({ type: [String] }) ids!: string[];
}
