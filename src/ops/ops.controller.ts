import { Body, Controller, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScopes } from '../security/auth.decorators.js';
import { CreateProbeDto, ProbeResponseDto } from './dto/probe.dto.js';
import { OpsService, TopologyView } from './ops.service.js';

@ApiTags('ops')
@Controller({ path: 'ops', version: '1' })
export class OpsController {
  constructor(private readonly ops: OpsService) {}

  @Get('topology')
  @RequireScopes('ops:read')
  @ApiOperation({ summary: 'Nodes, roles, timeline, lag, health, which serves reads and writes' })
  topology(): Promise<TopologyView> {
    return this.ops.topology();
  }

  @Post('probes')
  @HttpCode(201)
  @RequireScopes('ops:admin')
  @ApiOperation({ summary: 'Write a routing probe row on the writer' })
  createProbe(@Body() dto: CreateProbeDto): Promise<ProbeResponseDto> {
    return this.ops.createProbe(dto.note ?? '');
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
