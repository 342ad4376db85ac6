import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import { AcceptedResponseDto } from '../common/dto/error-response.dto.js';
import { RestoreStatusResponseDto } from './dto/backup-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { CreateRestoreDto, RestoreResponseDto } from './dto/restore.dto.js';
import { RestoresService } from './restores.service.js';

@ApiTags('backups')
@ApiV1Controller()
@Controller({ version: '1' })
export class RestoresController {
  constructor(private readonly restores: RestoresService) {}

  @Post('restores')
  @HttpCode(202)
  @RequireScopes('backup:admin')
  @ApiOperation({
    summary: 'Point-in-time restore into a scratch instance (targetTime or targetLsn)',
  })
  @ApiAcceptedResponse({ type: AcceptedResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
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
  @ApiOkResponse({ type: RestoreStatusResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  get(@Param('id', new UuidParamPipe()) id: string): Promise<RestoreResponseDto> {
    return this.restores.get(id);
  }
}
