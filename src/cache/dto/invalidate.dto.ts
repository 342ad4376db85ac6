import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  Length,
} from 'class-validator';
import { CACHE_TYPES } from '../cache.types.js';
import type { CacheType } from '../cache.types.js';

export class InvalidateCacheDto {
  @ApiProperty({ enum: CACHE_TYPES }) @IsIn(CACHE_TYPES) type!: CacheType;

  @ApiPropertyOptional({
    type: [String],
    description: 'ids within the type; absent = every entry of the type',
  })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Length(1, 200, { each: true })
  keys?: string[];
}

export class InvalidateCacheResponseDto {
  @ApiProperty({ enum: CACHE_TYPES }) type!: CacheType;
  @ApiProperty({
    description: 'entries removed here (L1) and in Redis; other instances drop theirs on the bus',
  })
  removed!: number | null;
}
