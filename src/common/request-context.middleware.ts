import { BadRequestException, Injectable, NestMiddleware } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Consistency, RequestContext, RequestContextStore } from './request-context.js';

/** The raw request keeps its context: Fastify hooks run outside the AsyncLocalStorage scope. */
export type RawRequest = FastifyRequest['raw'] & { id?: string; dbuContext?: RequestContext };

const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

function parseLsn(value: string | string[]): string | null {
  return typeof value === 'string' && LSN.test(value) ? value.toUpperCase() : null;
}

/** Opens the request's context (request id, consistency) for everything downstream. */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  use(req: RawRequest, _res: FastifyReply['raw'], next: () => void): void {
    const header = req.headers['x-consistency'];
    const consistency: Consistency = header === 'strong' ? 'strong' : 'default';
    const lsnHeader = req.headers['x-write-lsn'];
    const minLsn = lsnHeader === undefined ? undefined : parseLsn(lsnHeader);
    if (minLsn === null) {
      throw new BadRequestException(['x-write-lsn must be a PostgreSQL LSN such as 0/16B3748']);
    }
    const ctx: RequestContext = { requestId: String(req.id ?? ''), consistency, minLsn };
    req.dbuContext = ctx;
    RequestContextStore.run(ctx, next);
  }
}
