import {
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { BackupsService } from './backups.service.js';
import type { BackupDetailResponseDto, BackupListResponseDto } from './dto/backup.dto.js';
import { CreateBackupDto, QueryBackupsDto } from './dto/backup.dto.js';

@ApiTags('backups')
@Controller({ path: 'backups', version: '1' })
@RequireScopes('backup:admin')
export class BackupsController {
  constructor(private readonly backups: BackupsService) {}

  @Get()
  @ApiOperation({ summary: 'Backups, newest first (kind, label, LSNs, sizes, status, verdict)' })
  list(@Query() q: QueryBackupsDto): Promise<BackupListResponseDto> {
    return this.backups.list(q.limit ?? 20, q.cursor);
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Take a backup now; poll GET /v1/backups/:id (409 while one runs)' })
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
  get(@Param('id', new ParseUUIDPipe()) id: string): Promise<BackupDetailResponseDto> {
    return this.backups.get(id);
  }
}
