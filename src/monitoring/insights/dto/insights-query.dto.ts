import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsInt,
  IsISO8601,
  IsOptional,
  Matches,
  Max,
  Min,
  registerDecorator,
  ValidationArguments,
} from 'class-validator';
import { WINDOW_PATTERN } from '../insights-window.js';

/** `to` must come after `from` when both are valid dates. */
function IsAfterFrom(): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isAfterFrom',
      target: target.constructor,
      propertyName: propertyName.toString(),
      options: { message: 'to must be later than from' },
      validator: {
        validate: (value: unknown, args: ValidationArguments) => {
          const from = Date.parse(String((args.object as { from?: unknown }).from));
          const to = Date.parse(String(value));
          return Number.isNaN(from) || Number.isNaN(to) || to > from;
        },
      },
    });
}

/** A window with both ends given has no room for a duration. */
function NotWithFromAndTo(): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'notWithFromAndTo',
      target: target.constructor,
      propertyName: propertyName.toString(),
      options: { message: 'window cannot be combined with both from and to' },
      validator: {
        validate: (_value: unknown, args: ValidationArguments) => {
          const o = args.object as { from?: unknown; to?: unknown };
          return o.from === undefined || o.to === undefined;
        },
      },
    });
}

export class InsightsWindowQueryDto {
  @ApiPropertyOptional({ format: 'date-time', description: 'start of the window' })
  @IsOptional()
  @IsISO8601({ strict: true })
  from?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'end of the window (default: now)' })
  @IsOptional()
  @IsISO8601({ strict: true })
  @IsAfterFrom()
  to?: string;

  @ApiPropertyOptional({
    example: '1h',
    description:
      'window length (30s, 15m, 1h, 7d): ending at `to` or now, or starting at `from`; default 1h',
  })
  @IsOptional()
  @Matches(WINDOW_PATTERN, { message: 'window must be a duration such as 30s, 15m, 1h or 7d' })
  @NotWithFromAndTo()
  window?: string;
}

export class TopSqlQueryDto extends InsightsWindowQueryDto {
  @ApiPropertyOptional({ default: 20, minimum: 1, maximum: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;
}

export class WaitsQueryDto extends InsightsWindowQueryDto {
  @ApiPropertyOptional({
    default: 10,
    minimum: 1,
    maximum: 100,
    description: 'statements in the per-statement breakdown',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;
}

export class WindowDto {
  @ApiProperty({ format: 'date-time' }) from!: string;
  @ApiProperty({ format: 'date-time' }) to!: string;
}
