import {
  Controller,
  ForbiddenException,
  Get,
  Headers,
  Inject,
  Res,
  UnauthorizedException,
  VERSION_NEUTRAL,
} from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { ApiErrorResponses, ApiPublic } from '../common/openapi.decorators.js';
import type { FastifyReply } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ApiKeyService } from '../security/api-key.service.js';
import { Public } from '../security/auth.decorators.js';
import { MetricsService } from './metrics.service.js';

@ApiTags('health')
@ApiPublic()
@Controller({ path: 'metrics', version: VERSION_NEUTRAL })
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    private readonly keys: ApiKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Prometheus text format. Open unless METRICS_REQUIRE_KEY (then scope ops:read). */
  @Public()
  @Get()
  @ApiOperation({
    summary: 'Prometheus text format; open unless METRICS_REQUIRE_KEY (then a key with ops:read)',
  })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus exposition format', schema: { type: 'string' } })
  @ApiErrorResponses(401, 403)
  async scrape(
    @Headers('authorization') authorization: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    if (this.config.security.metricsRequireKey) {
      const secret = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
      const key = secret ? this.keys.authenticate(secret) : null;
      if (!key) {
        throw new UnauthorizedException('metrics need an API key');
      }
      if (!key.scopes.has('ops:read')) {
        throw new ForbiddenException(`API key ${key.id} lacks scope ops:read`);
      }
    }
    const { contentType, body } = await this.metrics.render();
    await reply.header('content-type', contentType).send(body);
  }
}
