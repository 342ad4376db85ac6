import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiV1Controller, ApiWrite } from '../common/openapi.decorators.js';
import { RequireScopes } from '../security/auth.decorators.js';
import { CacheService } from './cache.service.js';
import { InvalidateCacheDto, InvalidateCacheResponseDto } from './dto/invalidate.dto.js';

@ApiTags('ops')
@ApiV1Controller()
@Controller({ path: 'ops/cache', version: '1' })
export class CacheController {
  constructor(private readonly cache: CacheService) {}

  @Post('invalidate')
  @HttpCode(200)
  @RequireScopes('ops:admin')
  @ApiOperation({
    summary:
      'Invalidate cache entries of a type (by keys, or all of the type) in Redis and on every instance; reports what each removed',
  })
  @ApiOkResponse({ type: InvalidateCacheResponseDto })
  @ApiWrite()
  invalidate(@Body() dto: InvalidateCacheDto): Promise<InvalidateCacheResponseDto> {
    return this.cache.invalidateCounted(dto.type, dto.keys);
  }
}
