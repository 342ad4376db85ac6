import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
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
import { BackupPageResponseDto, BackupWithManifestResponseDto } from './dto/backup-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { BackupsService } from './backups.service.js';
import type { BackupDetailResponseDto, BackupListResponseDto } from './dto/backup.dto.js';
import { CreateBackupDto, QueryBackupsDto } from './dto/backup.dto.js';

@ApiTags('backups')
@ApiV1Controller()
@Controller({ path: 'backups', version: '1' })
@RequireScopes('backup:admin')
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

  @Get()
  @ApiOperation({ summary: 'Backups, newest first (kind, label, LSNs, sizes, status, verdict)' })
  @ApiOkResponse({ type: BackupPageResponseDto })
  list(@Query() q: QueryBackupsDto): Promise<BackupListResponseDto> {
    return this.backups.list(q.limit ?? 20, q.cursor);
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Take a backup now; poll GET /v1/backups/:id (409 while one runs)' })
  @ApiAcceptedResponse({ type: AcceptedResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async create(
    @Body() dto: CreateBackupDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ id: string }> {
    const created = await this.backups.start(dto.type);
    void reply.header('location', `/v1/backups/${created.id}`);
    return created;
  }

  @Get(':id')
  @ApiOperation({ summary: 'One backup with its manifest (LSN, per-table counts and checksums)' })
  @ApiOkResponse({ type: BackupWithManifestResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  get(@Param('id', new UuidParamPipe()) id: string): Promise<BackupDetailResponseDto> {
    return this.backups.get(id);
  }
}
