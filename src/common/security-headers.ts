import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';

/**
 * Responses are JSON for other services: nothing on them may run, load or be framed.
 * The dashboard sets its own policy (src/dashboard/dashboard.controller.ts) and the
 * Swagger UI under /docs gets DOCS_CSP.
 */
const API_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
  },
};

/** Swagger UI: its own scripts and its inline styles, nothing from elsewhere. */
const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Security headers on every response (@fastify/helmet: CSP, HSTS, nosniff, frame and
 * referrer policies, cross-origin policies) and CORS closed unless HTTP_CORS_ORIGINS
 * names the browser origins allowed: then only those, with the API's headers.
 */
export async function registerSecurityHeaders(
  app: NestFastifyApplication,
  corsOrigins: string[],
): Promise<void> {
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: API_CSP,
    hsts: { maxAge: 31_536_000, includeSubDomains: true },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
  });
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', async (request, reply) => {
      if (request.url === '/docs' || request.url.startsWith('/docs/')) {
        void reply.header('content-security-policy', DOCS_CSP);
      }
    });
  if (corsOrigins.length > 0) {
    await app.register(fastifyCors, {
      origin: corsOrigins,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: [
        'authorization',
        'content-type',
        'idempotency-key',
        'if-match',
        'if-none-match',
        'x-consistency',
        'x-request-id',
        'x-write-lsn',
      ],
      exposedHeaders: [
        'etag',
        'location',
        'retry-after',
        'x-ratelimit-remaining',
        'x-request-id',
        'x-write-lsn',
      ],
      maxAge: 600,
    });
  }
}
