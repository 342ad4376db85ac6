import { Injectable, NestMiddleware } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Consistency, RequestContextStore } from './request-context.js';

type RawRequest = FastifyRequest['raw'] & { id?: string };

/** Opens the request's context (request id, consistency) for everything downstream. */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  use(req: RawRequest, _res: FastifyReply['raw'], next: () => void): void {
    const header = req.headers['x-consistency'];
    const consistency: Consistency = header === 'strong' ? 'strong' : 'default';
    RequestContextStore.run({ requestId: String(req.id ?? ''), consistency }, next);
  }
}
