import {
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  ParseIntPipe,
  ParseUUIDPipe,
  Post,
  Res,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { JobRunRow } from '../database/job-runs.repository.js';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../security/auth.decorators.js';
import { FailoverService } from '../database/failover.service.js';
import { PoolControllerService } from '../database/pool-controller.service.js';
import type { FailoverRecord } from '../database/failover.service.js';
import { CreateProbeDto, FailoverRequestDto, ProbeResponseDto } from './dto/probe.dto.js';
import { OpsService, TopologyView } from './ops.service.js';

@ApiTags('ops')
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
  topology(): Promise<TopologyView> {
    return this.ops.topology();
  }

  @Get('pools')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary: 'Pool sizes, utilization, waits, PgBouncer pool state and recent scaling events',
  })
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
  failover(@Body() dto: FailoverRequestDto): Promise<FailoverRecord> {
    return this.failovers.requestSwitchover(dto.target);
  }

  @Post('probes')
  @HttpCode(201)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Write a routing probe row on the writer' })
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
  job(@Param('id', new ParseIntPipe()) id: number): Promise<JobRunRow> {
    return this.ops.job(String(id));
  }

  @Get('probes/:id')
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Read a probe back where reads are routed; says which node served it' })
  getProbe(
    @Param('id', new ParseUUIDPipe({ version: '4' })) id: string,
  ): Promise<ProbeResponseDto> {
    return this.ops.getProbe(id);
  }
}
