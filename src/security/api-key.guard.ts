import {
  CanActivate,
  ExecutionContext,
  ForbiddenException,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequestContextStore } from '../common/request-context.js';
import { ApiKeyService, AuthenticatedKey } from './api-key.service.js';
import { IS_PUBLIC, REQUIRED_SCOPES } from './auth.decorators.js';
import { ApiRateLimiter } from './api-rate-limiter.js';
import { DASHBOARD_COOKIE, readCookie } from './session-cookie.js';

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
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyService,
    private readonly limiter: ApiRateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      return true;
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const reply = context.switchToHttp().getResponse<FastifyReply>();
    const key = this.identify(request);
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
    await this.limiter.consume(key.id, reply);
    return true;
  }

  /** The bearer key, or on /dashboard routes the login cookie's session (401 otherwise). */
  private identify(request: FastifyRequest): AuthenticatedKey {
    const secret = bearer(request.headers.authorization);
    if (secret) {
      const key = this.keys.authenticate(secret);
      if (!key) {
        throw new UnauthorizedException('unknown API key');
      }
      return key;
    }
    const session = dashboardSession(request);
    if (session) {
      const key = this.keys.verifySession(session);
      if (!key) {
        throw new UnauthorizedException('dashboard session expired or invalid: log in again');
      }
      return key;
    }
    throw new UnauthorizedException('missing API key: send Authorization: Bearer <key>');
  }
}

export function bearer(header: string | undefined): string | null {
  if (!header) {
    return null;
  }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/**
 * The dashboard's session cookie, read on /dashboard routes only (a key never travels in a
 * URL: no query token).
 */
function dashboardSession(request: FastifyRequest): string | null {
  if (!request.url.startsWith('/dashboard')) {
    return null;
  }
  return readCookie(request.headers.cookie, DASHBOARD_COOKIE);
}
