import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { CreateRestoreDto, RestoreResponseDto } from './dto/restore.dto.js';
import { RestoresService } from './restores.service.js';

@ApiTags('backups')
@Controller({ version: '1' })
export class RestoresController {
  constructor(private readonly restores: RestoresService) {}

  @Post('restores')
  @HttpCode(202)
  @RequireScopes('backup:admin')
  @ApiOperation({
    summary: 'Point-in-time restore into a scratch instance (targetTime or targetLsn)',
  })
  async create(
    @Body() dto: CreateRestoreDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ id: string }> {
    const created = await this.restores.request(dto);
    void reply.header('location', `/v1/restores/${created.id}`);
    return created;
  }

  @Get('restores/:id')
  @RequireScopes('backup:admin')
  @ApiOperation({ summary: 'A restore: status, connection details (no password), expiry' })
  get(@Param('id', new ParseUUIDPipe()) id: string): Promise<RestoreResponseDto> {
    return this.restores.get(id);
  }
}
