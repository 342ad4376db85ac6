import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import {
  ApiAcceptedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
} from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import { ErasureStatusResponseDto, ExportStatusResponseDto } from './dto/gdpr-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import type { ErasureResponseDto, ExportResponseDto } from './dto/gdpr.dto.js';
import { CreateExportDto, DownloadQueryDto } from './dto/gdpr.dto.js';
import { ErasureService } from './erasure.service.js';
import { ExportService } from './export.service.js';

const uuid = new UuidParamPipe();

@ApiTags('gdpr')
@ApiV1Controller()
@Controller({ version: '1' })
export class GdprController {
  constructor(
    private readonly exportsService: ExportService,
    private readonly erasure: ErasureService,
  ) {}

  @Post('users/:id/exports')
  @HttpCode(202)
  @RequireScopes('gdpr:export')
  @ApiOperation({ summary: "Export all of a user's data (json, or csv files in a zip)" })
  @ApiAcceptedResponse({ type: ExportStatusResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async requestExport(
    @Param('id', uuid) id: string,
    @Body() dto: CreateExportDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ExportResponseDto> {
    const created = await this.exportsService.request(id, dto.format);
    void reply.header('location', `/v1/exports/${created.id}`);
    return created;
  }

  @Get('exports/:id')
  @RequireScopes('gdpr:export')
  @ApiOperation({ summary: 'Export status; when ready, a single-use expiring download URL' })
  @ApiOkResponse({ type: ExportStatusResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getExport(@Param('id', uuid) id: string): Promise<ExportResponseDto> {
    return this.exportsService.get(id);
  }

  @Get('exports/:id/download')
  @RequireScopes('gdpr:export')
  @ApiOperation({ summary: 'The export file, decrypted for this download only' })
  @ApiProduces('application/json', 'application/zip')
  @ApiOkResponse({
    description: 'the export file: JSON, or a zip of CSV files',
    schema: { type: 'string', format: 'binary' },
    headers: {
      'Content-Disposition': { schema: { type: 'string' } },
      'x-content-sha256': { description: 'SHA-256 of the file', schema: { type: 'string' } },
    },
  })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async download(
    @Param('id', uuid) id: string,
    @Query() q: DownloadQueryDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<Buffer> {
    const file = await this.exportsService.download(id, q.token);
    void reply
      .header('content-type', file.contentType)
      .header('content-disposition', `attachment; filename="${file.fileName}"`)
      .header('x-content-sha256', file.sha256)
      .header('cache-control', 'no-store');
    return file.body;
  }

  @Post('users/:id/erasure')
  @HttpCode(202)
  @RequireScopes('gdpr:erase')
  @ApiOperation({ summary: 'Erase a user: irreversible cascade delete, verified' })
  @ApiAcceptedResponse({ type: ErasureStatusResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async requestErasure(
    @Param('id', uuid) id: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ErasureResponseDto> {
    const { request } = await this.erasure.request(id);
    void reply.header('location', `/v1/erasure-requests/${request.id}`);
    return request;
  }

  @Get('erasure-requests/:id')
  @RequireScopes('gdpr:erase')
  @ApiOperation({ summary: 'Erasure status and its verification report' })
  @ApiOkResponse({ type: ErasureStatusResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getErasure(@Param('id', uuid) id: string): Promise<ErasureResponseDto> {
    return this.erasure.get(id);
  }
}
