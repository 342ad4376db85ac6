import { Inject, Injectable, NestMiddleware } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { Consistency, RequestContext, RequestContextStore } from './request-context.js';

/** The raw request keeps its context: Fastify hooks run outside the AsyncLocalStorage scope. */
export type RawRequest = FastifyRequest['raw'] & { id?: string; dbuContext?: RequestContext };

const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/** An `x-write-lsn` value as PostgreSQL writes it, or null. */
export function parseLsn(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && LSN.test(value) ? value.toUpperCase() : null;
}

/** Opens the request's context (request id, consistency) for everything downstream. */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  private readonly measure: boolean;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.measure = config.http.serverTiming;
  }

  use(req: RawRequest, _res: FastifyReply['raw'], next: () => void): void {
    const header = req.headers['x-consistency'];
    // A malformed header was already answered 400 by the onRequest hook (app.setup.ts).
    const consistency: Consistency =
      header === 'strong' || header === 'eventual' ? header : 'default';
    const minLsn = parseLsn(req.headers['x-write-lsn']) ?? undefined;
    const ctx: RequestContext = { requestId: String(req.id ?? ''), consistency, minLsn };
    if (this.measure) {
      ctx.timings = { startedAt: performance.now(), stages: {} };
    }
    req.dbuContext = ctx;
    RequestContextStore.run(ctx, next);
  }
}
