import { applyDecorators } from '@nestjs/common';
import { ApiHeader, ApiParam, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import type { HeadersObject } from '@nestjs/swagger';
import { CONSISTENCY_HEADER_VALUES } from './request-context.js';
import { ErrorResponseDto } from './dto/error-response.dto.js';

/**
 * OpenAPI building blocks shared by the controllers, so that a header or an error answer
 * is described once. The document itself is completed in `completeOpenApiDocument`.
 */

export const LOCATION_HEADER: HeadersObject = {
  Location: {
    description: 'where the new resource (or the status to poll) is',
    schema: { type: 'string' },
  },
};

export const ETAG_HEADER: HeadersObject = {
  ETag: { description: 'the version as an entity tag, e.g. "3"', schema: { type: 'string' } },
};

const RETRY_AFTER: HeadersObject = {
  'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'string' } },
};

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'invalid input: every bad field is named in `errors`',
  401: 'missing or unknown API key',
  403: 'the API key lacks the scope this route needs',
  404: 'no such resource',
  409: 'conflict with the current state (or an Idempotency-Key reused for another request)',
  412: 'If-Match does not hold the current version',
  413: 'request body too large',
  429: 'rate limit of the API key exceeded',
  503: 'a dependency (database node, failover in progress) is unavailable; retry',
};

/** Error answers, all with the one error body. */
export function ApiErrorResponses(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...statuses.map((status) =>
      ApiResponse({
        status,
        description: ERROR_DESCRIPTIONS[status] ?? 'error',
        type: ErrorResponseDto,
        headers: status === 429 || status === 503 ? RETRY_AFTER : undefined,
      }),
    ),
  );
}

/**
 * Every `/v1` controller: bearer key with scopes, per-key rate limit, and the read
 * routing headers (validated on every request: a bad value is a 400).
 */
export function ApiV1Controller(): ClassDecorator {
  return applyDecorators(
    ApiHeader({
      name: 'x-consistency',
      required: false,
      enum: [...CONSISTENCY_HEADER_VALUES],
      description: 'strong: reads of this request are served by the primary (default: replicas)',
    }),
    ApiHeader({
      name: 'x-write-lsn',
      required: false,
      schema: {
        type: 'string',
        pattern: '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$',
        example: '0/16B3748',
      },
      description:
        'read-your-writes: the x-write-lsn a previous write answered; reads go to nodes that replayed it',
    }),
    ApiErrorResponses(400, 401, 403, 429, 503),
  );
}

/** Routes that need no API key. */
export function ApiPublic(): MethodDecorator & ClassDecorator {
  return ApiSecurity({});
}

/** A path parameter that must be a UUID (else 400). */
export function ApiUuidParam(name = 'id'): MethodDecorator {
  return ApiParam({ name, format: 'uuid' });
}

/**
 * POST/PUT/PATCH/DELETE: `Idempotency-Key` replays the first answer to a retry (409 on
 * misuse), and a body over the size limit is a 413.
 */
export function ApiWrite(): MethodDecorator {
  return applyDecorators(
    ApiHeader({
      name: 'Idempotency-Key',
      required: false,
      schema: { type: 'string', pattern: '^[A-Za-z0-9_\\-:.]{1,200}$' },
      description:
        'a retry with the same key and request gets the first answer back instead of writing twice',
    }),
    ApiErrorResponses(409, 413),
  );
}

/** Conditional writes on a versioned resource. */
export function ApiIfMatch(): MethodDecorator {
  return applyDecorators(
    ApiHeader({
      name: 'If-Match',
      required: false,
      description: 'the current version as its ETag gives it ("3"), or * (the resource must exist)',
    }),
    ApiErrorResponses(412),
  );
}

/** Conditional reads: 304 when `If-None-Match` holds the current ETag (or *). */
export function ApiIfNoneMatch(): MethodDecorator {
  return applyDecorators(
    ApiHeader({
      name: 'If-None-Match',
      required: false,
      description:
        'ETags the caller holds (or *): the answer is 304 with no body when one is current',
    }),
    ApiResponse({ status: 304, description: 'not modified', headers: ETAG_HEADER }),
  );
}
