import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsNumber, IsOptional, IsString, Length, Max, Min } from 'class-validator';

export class ExplainQueryDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) cuisine?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) tag?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 60) dietary?: string;
  @ApiPropertyOptional()
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(2_147_483_647) // total_minutes is an int4: a larger bound is a 500 in PostgreSQL
  maxTotalMinutes?: number;
  @ApiPropertyOptional({ default: 20 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(50)
  limit?: number;
  @ApiPropertyOptional({ default: 2, description: 'cosine distance bound (2: none)' })
  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(2)
  maxDistance?: number;
}
