import { Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { ExplainQueryDto } from './dto/explain.dto.js';
import { normaliseFilters } from './search.service.js';
import { ExplainReport, VectorIndexService } from './vector-index.service.js';

@ApiTags('ops')
@Controller({ path: 'ops', version: '1' })
export class VectorOpsController {
  constructor(private readonly index: VectorIndexService) {}

  @Get('vector-search/explain')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary:
      'EXPLAIN (ANALYZE, BUFFERS) of a representative vector search, run as the search runs: the plan it reports, index used, rows, buffers',
  })
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
  async rebuild(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ id: string }> {
    const id = await this.index.startRebuild();
    void reply.header('location', `/v1/ops/jobs/${id}`);
    return { id };
  }
}
