import { Body, Controller, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { IntParamPipe, UuidParamPipe } from '../common/params.js';
import type { FastifyReply } from 'fastify';
import type { JobRunRow } from '../database/job-runs.repository.js';
import {
  ApiCreatedResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import {
  FailoverRecordResponseDto,
  JobRunResponseDto,
  PoolsResponseDto,
  TopologyResponseDto,
} from './dto/ops-response.dto.js';
import { RequireScopes } from '../security/auth.decorators.js';
import { FailoverService } from '../database/failover.service.js';
import { PoolControllerService } from '../database/pool-controller.service.js';
import type { FailoverRecord } from '../database/failover.service.js';
import { CreateProbeDto, FailoverRequestDto, ProbeResponseDto } from './dto/probe.dto.js';
import { OpsService, TopologyView } from './ops.service.js';

@ApiTags('ops')
@ApiV1Controller()
@Controller({ path: 'ops', version: '1' })
export class OpsController {
  constructor(
    private readonly ops: OpsService,
    private readonly failovers: FailoverService,
    private readonly poolController: PoolControllerService,
  ) {}

  @Get('topology')
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Nodes, roles, timeline, lag, health, which serves reads and writes' })
  @ApiOkResponse({ type: TopologyResponseDto })
  topology(): Promise<TopologyView> {
    return this.ops.topology();
  }

  @Get('pools')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary: 'Pool sizes, utilization, waits, PgBouncer pool state and recent scaling events',
  })
  @ApiOkResponse({ type: PoolsResponseDto })
  pools(): ReturnType<PoolControllerService['view']> {
    return this.poolController.view();
  }

  @Post('failover')
  @HttpCode(200)
  @RequireScopes('ops:admin')
  @ApiOperation({
    summary:
      'Promote a replica: a planned switchover while the writer is healthy (waits for the replica to catch up), else a failover',
  })
  @ApiOkResponse({ type: FailoverRecordResponseDto })
  @ApiWrite()
  failover(@Body() dto: FailoverRequestDto): Promise<FailoverRecord> {
    return this.failovers.requestSwitchover(dto.target);
  }

  @Post('probes')
  @HttpCode(201)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Write a routing probe row on the writer' })
  @ApiCreatedResponse({ type: ProbeResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async createProbe(
    @Body() dto: CreateProbeDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProbeResponseDto> {
    const probe = await this.ops.createProbe(dto.note ?? '');
    void reply.header('location', `/v1/ops/probes/${probe.id}`);
    return probe;
  }

  @Get('jobs/:id')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary: 'One job run (scheduled or started by an ops action): status and detail',
  })
  @ApiOkResponse({ type: JobRunResponseDto })
  @ApiParam({ name: 'id', type: 'integer' })
  @ApiErrorResponses(404)
  job(@Param('id', new IntParamPipe()) id: number): Promise<JobRunRow> {
    return this.ops.job(String(id));
  }

  @Get('probes/:id')
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Read a probe back where reads are routed; says which node served it' })
  @ApiOkResponse({ type: ProbeResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getProbe(@Param('id', new UuidParamPipe('4')) id: string): Promise<ProbeResponseDto> {
    return this.ops.getProbe(id);
  }
}
