import { Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiV1Controller, ApiWrite, LOCATION_HEADER } from '../common/openapi.decorators.js';
import { AcceptedResponseDto } from '../common/dto/error-response.dto.js';
import { ExplainReportResponseDto } from './dto/explain-response.dto.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ExplainQueryDto } from './dto/explain.dto.js';
import { normaliseFilters } from './search.service.js';
import { ExplainReport, VectorIndexService } from './vector-index.service.js';

@ApiTags('ops')
@ApiV1Controller()
@Controller({ path: 'ops', version: '1' })
export class VectorOpsController {
  constructor(private readonly index: VectorIndexService) {}

  @Get('vector-search/explain')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary:
      'EXPLAIN (ANALYZE, BUFFERS) of a representative vector search, run as the search runs: the plan it reports, index used, rows, buffers',
  })
  @ApiOkResponse({ type: ExplainReportResponseDto })
  explain(@Query() q: ExplainQueryDto): Promise<ExplainReport> {
    return this.index.explain(
      normaliseFilters({
        cuisine: q.cuisine,
        tags: q.tag ? [q.tag] : undefined,
        dietary: q.dietary ? [q.dietary] : undefined,
        maxTotalMinutes: q.maxTotalMinutes,
      }),
      q.limit ?? 20,
      q.maxDistance,
    );
  }

  @Post('vector-index/rebuild')
  @HttpCode(202)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Rebuild the HNSW index concurrently; poll the job' })
  @ApiAcceptedResponse({ type: AcceptedResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async rebuild(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ id: string }> {
    const id = await this.index.startRebuild();
    void reply.header('location', `/v1/ops/jobs/${id}`);
    return { id };
  }
}
