import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isNodeDownError } from '../database/node-errors.js';
import { DomainError, ErrorCode, InvalidInputError } from './errors.js';

const STATUS_BY_CODE: Record<ErrorCode, number> = {
  [ErrorCode.NotFound]: HttpStatus.NOT_FOUND,
  [ErrorCode.Conflict]: HttpStatus.CONFLICT,
  [ErrorCode.PreconditionFailed]: HttpStatus.PRECONDITION_FAILED,
  [ErrorCode.DependencyUnavailable]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorCode.Timeout]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorCode.BadGateway]: HttpStatus.BAD_GATEWAY,
  [ErrorCode.Invalid]: HttpStatus.BAD_REQUEST,
  [ErrorCode.Forbidden]: HttpStatus.FORBIDDEN,
};

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  requestId: string;
  code?: string;
  /** Validation failures: every bad field by its path, with what is wrong with it. */
  errors?: Array<{ field: string; message: string }>;
}

/**
 * The one place errors become HTTP: HttpExceptions pass through in the API.md shape,
 * domain errors map by code, anything else is a 500 that leaks nothing. Logs once.
 */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger(AllExceptionsFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const request = ctx.getRequest<FastifyRequest>();
    const requestId = String(request.id);
    let body: ErrorBody;

    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const res = exception.getResponse();
      const raw =
        typeof res === 'string'
          ? res
          : ((res as { message?: string | string[] }).message ?? exception.message);
      // one string always: lines a thrower gave as a list are joined
      const message = Array.isArray(raw) ? raw.join('; ') : raw;
      body = { statusCode: status, error: REASON[status] ?? exception.name, message, requestId };
      const fieldErrors = typeof res === 'object' ? (res as Partial<ErrorBody>).errors : undefined;
      if (Array.isArray(fieldErrors)) {
        body.errors = fieldErrors;
      }
      if (status >= 500) {
        this.logger.error({ err: exception, status }, 'request failed');
      }
    } else if (exception instanceof DomainError) {
      const status = STATUS_BY_CODE[exception.code];
      body = {
        statusCode: status,
        error: REASON[status] ?? 'Error',
        message: exception.message,
        code: exception.code,
        requestId,
      };
      if (exception instanceof InvalidInputError) {
        body.errors = exception.errors;
      }
      if (status >= 500) {
        this.logger.warn({ code: exception.code, status }, exception.message);
      }
      const retryAfter = (exception as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (retryAfter !== undefined) {
        void reply.header('retry-after', String(retryAfter));
      }
    } else if (isFastifyClientError(exception)) {
      const status = exception.statusCode;
      body = {
        statusCode: status,
        error: REASON[status] ?? 'Error',
        message: exception.message,
        requestId,
      };
      // the content-type parser's refusals (broken or empty JSON, unsupported type) are about the body
      if (status === 400 && exception.code.startsWith('FST_ERR_CTP_')) {
        body.errors = [{ field: 'body', message: exception.message }];
      }
    } else if (isNodeDownError(exception)) {
      // A node died under this request: retryable, not a bug.
      this.logger.warn({ error: (exception as Error).message }, 'database node unavailable');
      body = {
        statusCode: 503,
        error: REASON[503],
        message: 'a database node is unavailable; retry',
        code: ErrorCode.DependencyUnavailable,
        requestId,
      };
      void reply.header('retry-after', '1');
    } else {
      this.logger.error({ err: exception }, 'unhandled error');
      body = {
        statusCode: 500,
        error: REASON[500],
        message: 'Internal server error',
        requestId,
      };
    }
    body.message = withoutQueryString(body.message, request.url);
    void reply.status(body.statusCode).send(body);
  }
}

/**
 * Messages that quote the request URL (Nest's "Cannot GET /path?…" 404) keep the path only:
 * a query string can carry a credential (`?token=`), and an error never echoes one.
 */
function withoutQueryString(message: string, url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? message : message.split(url).join(url.slice(0, q));
}

function isFastifyClientError(
  e: unknown,
): e is { statusCode: number; message: string; code: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { statusCode?: unknown }).statusCode === 'number' &&
    (e as { statusCode: number }).statusCode >= 400 &&
    (e as { statusCode: number }).statusCode < 500 &&
    typeof (e as { code?: unknown }).code === 'string' &&
    String((e as { code: string }).code).startsWith('FST_')
  );
}
