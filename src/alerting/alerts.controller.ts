import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Res,
} from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { AlertsService } from './alerts.service.js';
import { AlertsResponseDto, CreateSilenceDto, SilenceResponseDto } from './dto/silence.dto.js';

@ApiTags('ops')
@Controller({ path: 'ops/alerts', version: '1' })
export class AlertsController {
  constructor(private readonly alerts: AlertsService) {}

  @Get()
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Active (pending, firing) and recently resolved alerts' })
  list(): Promise<AlertsResponseDto> {
    return this.alerts.list();
  }

  @Post('silences')
  @HttpCode(201)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Silence notifications of alerts matching every matcher, for a time' })
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
  async listSilences(): Promise<{ items: SilenceResponseDto[]; nextCursor: null }> {
    return { items: await this.alerts.listSilences(), nextCursor: null };
  }

  @Get('silences/:id')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'One silence, ended or not' })
  getSilence(@Param('id', new ParseUUIDPipe()) id: string): Promise<SilenceResponseDto> {
    return this.alerts.getSilence(id);
  }

  @Delete('silences/:id')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'End a silence now' })
  expireSilence(@Param('id', new ParseUUIDPipe()) id: string): Promise<SilenceResponseDto> {
    return this.alerts.expireSilence(id);
  }
}
