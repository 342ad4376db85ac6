import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsEmail,
  IsObject,
  IsOptional,
  IsString,
  Length,
  MaxLength,
} from 'class-validator';
import { IsEmbedding } from '../../recipes/dto/embedding.validator.js';

export class CreateUserDto {
  @ApiProperty({ format: 'email' }) @IsEmail() @MaxLength(320) email!: string;
  @ApiProperty({ maxLength: 120 }) @IsString() @Length(1, 120) displayName!: string;
}

export class UserResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() email!: string;
  @ApiProperty() displayName!: string;
  @ApiProperty() createdAt!: string;
}

export class PutProfileDto {
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'free-form profile data (≤ 16 kB JSON)',
  })
  @IsObject()
  // the parsed JSON as sent: class-transformer's copy drops keys named like Object.prototype
  // members (`toString`, `valueOf`, ...), which free-form data may well use
  @Transform(({ obj }: { obj: { data?: unknown } }) => obj.data)
  data!: Record<string, unknown>;
}

export class ProfileResponseDto {
  @ApiProperty() userId!: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) data!: Record<string, unknown>;
  @ApiProperty() version!: number;
  @ApiProperty() updatedAt!: string;
}

export class PutTasteProfileDto {
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMaxSize(100)
  @IsString({ each: true })
  @Length(1, 60, { each: true })
  likedCuisines!: string[];
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMaxSize(500)
  @IsString({ each: true })
  @Length(1, 120, { each: true })
  likedIngredients!: string[];
  @ApiProperty({ type: [String] })
  @IsArray()
  @ArrayMaxSize(500)
  @IsString({ each: true })
  @Length(1, 120, { each: true })
  dislikes!: string[];
  @ApiPropertyOptional({ type: [Number] }) @IsOptional() @IsEmbedding() embedding?: number[];
}

export class TasteProfileResponseDto {
  @ApiProperty() userId!: string;
  @ApiProperty({ type: [String] }) likedCuisines!: string[];
  @ApiProperty({ type: [String] }) likedIngredients!: string[];
  @ApiProperty({ type: [String] }) dislikes!: string[];
  @ApiProperty() hasEmbedding!: boolean;
  @ApiProperty() version!: number;
  @ApiProperty() updatedAt!: string;
}
