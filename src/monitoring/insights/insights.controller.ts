import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiV1Controller } from '../../common/openapi.decorators.js';
import { RequireScopes } from '../../security/auth.decorators.js';
import { TopSqlQueryDto, WaitsQueryDto } from './dto/insights-query.dto.js';
import {
  ConnectionsResponseDto,
  LocksResponseDto,
  TopSqlResponseDto,
  WaitsResponseDto,
} from './dto/insights-response.dto.js';
import { InsightsService } from './insights.service.js';

@ApiTags('ops')
@ApiV1Controller()
@Controller({ path: 'ops/insights', version: '1' })
export class InsightsController {
  constructor(private readonly insights: InsightsService) {}

  @Get('top-sql')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary:
      'Statements ranked by execution time in a window (deltas between pg_stat_statements snapshots); available:false with a reason when pg_stat_statements cannot be read',
  })
  @ApiOkResponse({ type: TopSqlResponseDto })
  topSql(@Query() q: TopSqlQueryDto): Promise<TopSqlResponseDto> {
    return this.insights.topSql(q);
  }

  @Get('waits')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary:
      'Database load in a window as average active sessions, by wait event type, wait event and statement',
  })
  @ApiOkResponse({ type: WaitsResponseDto })
  waits(@Query() q: WaitsQueryDto): Promise<WaitsResponseDto> {
    return this.insights.waits(q);
  }

  @Get('locks')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary: 'Current blocking trees on the writer: who blocks whom, since when, on what',
  })
  @ApiOkResponse({ type: LocksResponseDto })
  locks(): Promise<LocksResponseDto> {
    return this.insights.locks();
  }

  @Get('connections')
  @RequireScopes('ops:read')
  @ApiOperation({
    summary:
      "The writer's connections by application, user, client address and state, with idle-in-transaction ages",
  })
  @ApiOkResponse({ type: ConnectionsResponseDto })
  connections(): Promise<ConnectionsResponseDto> {
    return this.insights.connections();
  }
}
