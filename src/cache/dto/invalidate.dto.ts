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
    description:
      'ids within the type (search_results: the query hash, current generation); absent = every entry of the type',
  })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Length(1, 200, { each: true })
  keys?: string[];
}

export class InstanceRemovedDto {
  @ApiProperty({ description: 'instance id (host:pid:random)' }) instance!: string;
  @ApiProperty({ description: 'L1 entries this instance removed' }) removed!: number;
}

export class InvalidateCacheResponseDto {
  @ApiProperty({ enum: CACHE_TYPES }) type!: CacheType;
  @ApiProperty({
    description:
      'entries removed in Redis and in the L1 of every instance that answered (an entry cached in both tiers counts twice)',
  })
  removed!: number;
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'entries removed in Redis (null: Redis unreachable)',
  })
  redis!: number | null;
  @ApiProperty({
    type: [InstanceRemovedDto],
    description: 'L1 entries removed per instance, this one first',
  })
  instances!: InstanceRemovedDto[];
  @ApiProperty({
    description: 'instances that received the invalidation but did not answer within 1 s',
  })
  unanswered!: number;
}
