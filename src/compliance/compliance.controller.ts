import { Body, Controller, Get, Post, Query, Res } from '@nestjs/common';
import { invalidRequest } from '../common/errors.js';
import {
  ApiCreatedResponse,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import {
  ComplianceReportListResponseDto,
  ComplianceReportResponseDto,
} from './dto/compliance-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ComplianceService } from './compliance.service.js';
import type {
  ComplianceReportList,
  ComplianceReportResponse,
} from './dto/compliance-report.dto.js';
import {
  CreateComplianceReportDto,
  QueryComplianceReportDto,
} from './dto/compliance-report.dto.js';

@ApiTags('compliance')
@ApiV1Controller()
@ApiExtraModels(ComplianceReportResponseDto, ComplianceReportListResponseDto)
@Controller({ path: 'compliance/reports', version: '1' })
export class ComplianceController {
  constructor(private readonly compliance: ComplianceService) {}

  @Get()
  @RequireScopes('audit:read')
  @ApiOperation({
    summary: 'The stored report of ?month=YYYY-MM (json, or ?format=csv); without month, the list',
  })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({
    description: 'with month: the report (json, or csv with ?format=csv); without: the list',
    content: {
      'application/json': {
        schema: {
          oneOf: [
            { $ref: getSchemaPath(ComplianceReportResponseDto) },
            { $ref: getSchemaPath(ComplianceReportListResponseDto) },
          ],
        },
      },
      'text/csv': { schema: { type: 'string' } },
    },
  })
  @ApiErrorResponses(404)
  async get(
    @Query() q: QueryComplianceReportDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ComplianceReportResponse | ComplianceReportList | string> {
    if (q.month === undefined) {
      if (q.format !== undefined) {
        throw invalidRequest({
          field: 'format',
          message: 'format applies to one report: give month too',
        });
      }
      return this.compliance.list();
    }
    const stored = await this.compliance.get(q.month);
    if (q.format === 'csv') {
      // month matched YYYY-MM, so it is safe in the header.
      void reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="compliance-report-${q.month}.csv"`);
      return stored.csv;
    }
    return { ...stored.report, sha256: stored.sha256 };
  }

  @Post()
  @RequireScopes('audit:read')
  @ApiOperation({
    summary: "Build a month's report now (replaces a stored one); 201 + Location",
  })
  @ApiCreatedResponse({ type: ComplianceReportResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async build(
    @Body() dto: CreateComplianceReportDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ComplianceReportResponse> {
    const report = await this.compliance.build(dto.month);
    // month was validated as YYYY-MM
    void reply.header('location', `/v1/compliance/reports?month=${dto.month}`);
    return report;
  }
}
