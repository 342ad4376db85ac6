import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../security/auth.decorators.js';
import { CacheService } from './cache.service.js';
import { InvalidateCacheDto, InvalidateCacheResponseDto } from './dto/invalidate.dto.js';

@ApiTags('ops')
@Controller({ path: 'ops/cache', version: '1' })
export class CacheController {
  constructor(private readonly cache: CacheService) {}

  @Post('invalidate')
  @HttpCode(200)
  @RequireScopes('ops:admin')
  @ApiOperation({
    summary: 'Invalidate cache entries of a type (by keys, or all of the type) on every instance',
  })
  async invalidate(@Body() dto: InvalidateCacheDto): Promise<InvalidateCacheResponseDto> {
    if (dto.keys) {
      await this.cache.invalidate(dto.type, dto.keys);
      return { type: dto.type, removed: null };
    }
    return { type: dto.type, removed: await this.cache.invalidateType(dto.type) };
  }
}
