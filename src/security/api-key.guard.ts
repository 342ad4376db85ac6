import {
  CanActivate,
  ExecutionContext,
  ForbiddenException,
  HttpException,
  HttpStatus,
  Inject,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { RequestContextStore } from '../common/request-context.js';
import { ApiKeyService, AuthenticatedKey } from './api-key.service.js';
import { IS_PUBLIC, REQUIRED_SCOPES } from './auth.decorators.js';

declare module 'fastify' {
  interface FastifyRequest {
    apiKey?: AuthenticatedKey;
  }
}

/**
 * The one global guard: public routes pass; every other route needs a known key
 * (401) carrying the route's scopes (403), within the per-key rate limit (429).
 * A route that declares no scopes is closed to everyone (secure by default).
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly limiter: RateLimiterMemory;

  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.limiter = new RateLimiterMemory({
      points: config.security.rateLimit.limit,
      duration: Math.ceil(config.security.rateLimit.ttlMs / 1000),
    });
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    const secret = bearer(request.headers.authorization) ?? cookieOrQueryToken(request);
    if (!secret) {
      throw new UnauthorizedException('missing API key: send Authorization: Bearer <key>');
    }
    const key = this.keys.authenticate(secret);
    if (!key) {
      throw new UnauthorizedException('unknown API key');
    }
    request.apiKey = key;
    const ctx = RequestContextStore.get();
    if (ctx) {
      ctx.keyId = key.id;
    }
    const required = this.reflector.getAllAndOverride<string[] | undefined>(
      REQUIRED_SCOPES,
      targets,
    );
    if (!required || required.length === 0) {
      throw new ForbiddenException('this route declares no scope and is closed');
    }
    const missing = required.filter((s) => !key.scopes.has(s));
    if (missing.length > 0) {
      throw new ForbiddenException(`API key ${key.id} lacks scope ${missing.join(', ')}`);
    }
    await this.consume(key.id, reply);
    return true;
  }

  private async consume(keyId: string, reply: FastifyReply): Promise<void> {
    try {
      const res = await this.limiter.consume(keyId);
      void reply.header('x-ratelimit-remaining', String(res.remainingPoints));
    } catch (rejection) {
      if (rejection instanceof RateLimiterRes) {
        void reply.header('retry-after', String(Math.ceil(rejection.msBeforeNext / 1000)));
        throw new HttpException(
          'rate limit exceeded for this API key',
          HttpStatus.TOO_MANY_REQUESTS,
        );
      }
      throw rejection;
    }
  }
}

function bearer(header: string | undefined): string | null {
  if (!header) {
    return null;
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** Only the HTML dashboard may be opened with a cookie or a query token. */
function cookieOrQueryToken(request: FastifyRequest): string | null {
  if (!request.url.startsWith('/dashboard')) {
    return null;
  }
  const query = request.query as Record<string, unknown> | undefined;
  if (typeof query?.token === 'string') {
    return query.token;
  }
  const cookie = request.headers.cookie ?? '';
  const m = /(?:^|;\s*)dbu_key=([^;]+)/.exec(cookie);
  return m ? decodeURIComponent(m[1]) : null;
}
