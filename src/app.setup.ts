import { Logger, VersioningType } from '@nestjs/common';
import type { ValidationError } from 'class-validator';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { randomUUID } from 'node:crypto';
import { parseLsn } from './common/request-context.middleware.js';
import type { RawRequest } from './common/request-context.middleware.js';
import { CONSISTENCY_HEADER_VALUES, serverTimingHeader } from './common/request-context.js';
import { AllExceptionsFilter } from './common/http-exception.filter.js';
import { completeOpenApiDocument } from './common/openapi.document.js';
import { DenseArrayValidationPipe } from './common/validation-pipe.js';
import { MetricsService } from './monitoring/metrics.service.js';
import { RecipeReadFastPath } from './recipes/recipe-read.fast-path.js';
import type { FastifyRequest } from 'fastify';
import type { AppConfig } from './config/app-config.js';
import { APP_CONFIG } from './config/config.module.js';
import { BodyShapeError, FieldError, invalidRequest } from './common/errors.js';
import { jsonLimitViolation } from './common/json-limits.js';
import { removePrototypeKeys } from './common/prototype-keys.js';
import { registerSecurityHeaders } from './common/security-headers.js';

type ContentTypeParserDone = (err: Error | null, body?: unknown) => void;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Request ids: the caller's x-request-id when it is sane, else a fresh UUID. */
export function genReqId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export const FASTIFY_OPTIONS = {
  logger: false,
  genReqId,
  // Batch upserts carry 100 × 1536 floats.
  bodyLimit: 16 * 1024 * 1024,
  return503OnClosing: true,
} as const;

/** `text` parsed without its prototype-poisoning keys, or undefined if it is not JSON or has none. */
function withoutPrototypeKeys(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return removePrototypeKeys(value).length > 0 ? value : undefined;
}

/** Flattens nested validation errors: one per failed check, the field named by its path. */
export function validationFieldErrors(errors: ValidationError[], prefix = ''): FieldError[] {
  return errors.flatMap((e) => {
    const path = prefix ? `${prefix}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => ({
      field: path,
      message: m.startsWith(e.property) ? `${path}${m.slice(e.property.length)}` : `${path}: ${m}`,
    }));
    return [...own, ...validationFieldErrors(e.children ?? [], path)];
  });
}

/** Flattens nested validation errors into "field.path: what is wrong" lines. */
export function validationMessages(errors: ValidationError[], prefix = ''): string[] {
  return validationFieldErrors(errors, prefix).map((e) => e.message);
}

/**
 * Everything global about the HTTP app in one place: main.ts and the e2e tests
 * both call it, so tests exercise the same pipes, filters, hooks and versioning.
 */
export async function configureApp(
  app: NestFastifyApplication,
  opts: { docsUi?: boolean } = {},
): Promise<void> {
  const logger = new Logger('Http');
  const metrics = app.get(MetricsService);
  const config = app.get<AppConfig>(APP_CONFIG);
  const fastify = app.getHttpAdapter().getInstance();
  await registerSecurityHeaders(app, config.http.corsOrigins);

  // JSON bodies: depth and key count are checked on the raw text before parsing, on every
  // route (a body nested thousands of levels deep would overflow the stack in the DTO
  // transformation); then Fastify's own parser (prototype-poisoning protection) runs.
  const secureParse = fastify.getDefaultJsonParser('error', 'error');
  // A body refused only for a key that could poison prototypes (`__proto__`,
  // `constructor.prototype`) goes on without those keys: the validation pipe names them
  // beside every other bad field (common/prototype-keys.ts).
  const parseJson = (request: FastifyRequest, text: string, done: ContentTypeParserDone): void =>
    void secureParse(request, text, (err, value) => {
      if (err) {
        const salvaged = withoutPrototypeKeys(text);
        if (salvaged !== undefined) {
          done(null, salvaged);
          return;
        }
      }
      done(err, value);
    });
  app.useBodyParser(
    'application/json',
    { bodyLimit: FASTIFY_OPTIONS.bodyLimit },
    (request: FastifyRequest, body: Buffer, done: ContentTypeParserDone) => {
      const text = body.toString('utf8');
      // `Content-Type: application/json` with no body (a DELETE from a generic client):
      // no body; a route that needs one answers 400 naming its fields.
      if (text.trim() === '') {
        done(null, undefined);
        return;
      }
      const timings = (request.raw as RawRequest).dbuContext?.timings;
      const started = timings ? performance.now() : 0;
      const problem = jsonLimitViolation(text, config.http.json);
      if (problem) {
        done(new BodyShapeError(problem), undefined);
        return;
      }
      if (!timings) {
        parseJson(request, text, done);
        return;
      }
      parseJson(request, text, (err, value) => {
        timings.stages.parse = (timings.stages.parse ?? 0) + performance.now() - started;
        done(err, value);
      });
    },
  );

  fastify.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
    const bad: FieldError[] = [];
    const lsn = request.headers['x-write-lsn'];
    if (lsn !== undefined && parseLsn(lsn) === null) {
      bad.push({
        field: 'x-write-lsn',
        message: 'x-write-lsn must be a PostgreSQL LSN such as 0/16B3748',
      });
    }
    const consistency = request.headers['x-consistency'];
    if (
      consistency !== undefined &&
      !(CONSISTENCY_HEADER_VALUES as readonly unknown[]).includes(consistency)
    ) {
      bad.push({
        field: 'x-consistency',
        message: `x-consistency must be one of: ${CONSISTENCY_HEADER_VALUES.join(', ')}`,
      });
    }
    if (bad.length > 0) {
      return reply.code(400).send({
        statusCode: 400,
        error: 'Bad Request',
        message: bad.map((e) => e.message).join('; '),
        errors: bad,
        requestId: request.id,
      });
    }
  });
  // Cached GET /v1/recipes/:id from L1, before NestJS's pipeline (HTTP_FAST_PATH)
  app.get(RecipeReadFastPath, { strict: false }).register(fastify);
  // Read-your-writes: the writer's LSN after this request's writes (send it back as x-write-lsn).
  fastify.addHook('onSend', async (request, reply, payload) => {
    const ctx = (request.raw as RawRequest).dbuContext;
    if (ctx?.writeLsn) {
      void reply.header('x-write-lsn', ctx.writeLsn);
    }
    if (ctx?.timings) {
      void reply.header('server-timing', serverTimingHeader(ctx.timings));
    }
    return payload;
  });
  // "request completed" is an info line: below LOG_LEVEL=info, not even its fields are built
  const logRequests = ['info', 'debug', 'trace'].includes(config.logLevel);
  fastify.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      seconds,
    );
    if (logRequests && !route.startsWith('/health')) {
      logger.log(
        {
          requestId: request.id,
          method: request.method,
          route,
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          keyId: request.apiKey?.id,
        },
        'request completed',
      );
    }
  });

  app.enableVersioning({ type: VersioningType.URI });
  app.useGlobalFilters(new AllExceptionsFilter());
  app.useGlobalPipes(
    new DenseArrayValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      stopAtFirstError: false,
      // `message` the lines in one string; `errors` names each field by its path
      exceptionFactory: (errors) => {
        const fieldErrors = validationFieldErrors(errors);
        return invalidRequest(...fieldErrors);
      },
    }),
  );

  const doc = completeOpenApiDocument(
    SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('Database Unit')
        .setDescription('Data platform of the recipe-book application (REST contract v1)')
        .setVersion('1')
        .addBearerAuth({
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'API key',
          description: 'API key',
        })
        .addSecurityRequirements('bearer')
        .build(),
    ),
  );
  // NOTE: the Swagger UI needs @fastify/static, whose ESM-only dependencies Jest
  // cannot load on Node 20; e2e tests pass docsUi: false and a smoke test boots the
  // built main.js to check /docs itself.
  SwaggerModule.setup('docs', app, doc, { jsonDocumentUrl: 'docs-json', ui: opts.docsUi ?? true });
}
