import { Controller, Get, Res, ServiceUnavailableException, VERSION_NEUTRAL } from '@nestjs/common';
import { HealthCheckService } from '@nestjs/terminus';
import {
  ApiOkResponse,
  ApiOperation,
  ApiServiceUnavailableResponse,
  ApiTags,
} from '@nestjs/swagger';
import { ApiPublic } from '../common/openapi.decorators.js';
import { LiveResponseDto, ReadinessResponseDto } from './dto/health-response.dto.js';
import type { FastifyReply } from 'fastify';
import { Public } from '../security/auth.decorators.js';
import { LifecycleService } from '../common/lifecycle.service.js';
import { ReadinessService } from './health.service.js';

@ApiTags('health')
@Public()
@ApiPublic()
@Controller({ path: 'health', version: VERSION_NEUTRAL })
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly readiness: ReadinessService,
    private readonly lifecycle: LifecycleService,
  ) {}

  @Get('live')
  @ApiOperation({ summary: 'Process is up (no dependency checks)' })
  @ApiOkResponse({ type: LiveResponseDto })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({
    summary:
      'Primary, replicas (with lag), Redis and PgBouncer; 503 when the primary is unreachable',
  })
  @ApiOkResponse({ type: ReadinessResponseDto })
  @ApiServiceUnavailableResponse({
    type: ReadinessResponseDto,
    description: 'the primary is unreachable, or the instance is shutting down',
  })
  async ready(@Res() reply: FastifyReply): Promise<void> {
    if (this.lifecycle.draining) {
      await reply.status(503).send({ status: 'shutting_down', info: {}, error: {}, details: {} });
      return;
    }
    try {
      const result = await this.health.check([
        () => this.readiness.databaseChecks().then((rs) => Object.assign({}, ...rs)),
        () => this.readiness.redisCheck(),
        async () => (await this.readiness.pgbouncerCheck()) ?? {},
      ]);
      await reply.status(200).send(result);
    } catch (err) {
      if (err instanceof ServiceUnavailableException) {
        // Terminus' report is the body operators want to see on a 503.
        await reply.status(503).send(err.getResponse());
        return;
      }
      throw err;
    }
  }
}
