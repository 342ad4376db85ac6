import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
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
  createSilence(@Body() dto: CreateSilenceDto): Promise<SilenceResponseDto> {
    return this.alerts.createSilence(dto);
  }

  @Get('silences')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Silences that have not ended (active and scheduled)' })
  listSilences(): Promise<SilenceResponseDto[]> {
    return this.alerts.listSilences();
  }

  @Delete('silences/:id')
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'End a silence now' })
  expireSilence(@Param('id', new ParseUUIDPipe()) id: string): Promise<SilenceResponseDto> {
    return this.alerts.expireSilence(id);
  }
}
