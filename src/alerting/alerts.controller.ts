import { Body, Controller, Delete, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import { SilenceListResponseDto } from './dto/silence-list.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { AlertsService } from './alerts.service.js';
import { AlertsResponseDto, CreateSilenceDto, SilenceResponseDto } from './dto/silence.dto.js';

@ApiTags('ops')
@ApiV1Controller()
@Controller({ path: 'ops/alerts', version: '1' })
export class AlertsController {
  constructor(private readonly alerts: AlertsService) {}

  @Get()
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Active (pending, firing) and recently resolved alerts' })
  @ApiOkResponse({ type: AlertsResponseDto })
  list(): Promise<AlertsResponseDto> {
    return this.alerts.list();
  }

  @Post('silences')
  @HttpCode(201)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Silence notifications of alerts matching every matcher, for a time' })
  @ApiCreatedResponse({ type: SilenceResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async createSilence(
    @Body() dto: CreateSilenceDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SilenceResponseDto> {
    const silence = await this.alerts.createSilence(dto);
    void reply.header('location', `/v1/ops/alerts/silences/${silence.id}`);
    return silence;
  }

  @Get('silences')
  @RequireScopes('ops:admin')
  @ApiOperation({
    summary:
      'Silences that have not ended (active and scheduled): { items, nextCursor } (one page)',
  })
  @ApiOkResponse({ type: SilenceListResponseDto })
  async listSilences(): Promise<{ items: SilenceResponseDto[]; nextCursor: null }> {
    return { items: await this.alerts.listSilences(), nextCursor: null };
  }

  @Get('silences/:id')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'One silence, ended or not' })
  @ApiOkResponse({ type: SilenceResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getSilence(@Param('id', new UuidParamPipe()) id: string): Promise<SilenceResponseDto> {
    return this.alerts.getSilence(id);
  }

  @Delete('silences/:id')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'End a silence now' })
  @ApiOkResponse({ type: SilenceResponseDto })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  expireSilence(@Param('id', new UuidParamPipe()) id: string): Promise<SilenceResponseDto> {
    return this.alerts.expireSilence(id);
  }
}
