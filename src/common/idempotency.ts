import {
  CallHandler,
  ExecutionContext,
  Global,
  Inject,
  Injectable,
  Logger,
  Module,
  NestInterceptor,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants.js';
import { APP_INTERCEPTOR, Reflector } from '@nestjs/core';
import { InjectDataSource } from '@nestjs/typeorm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import { from, lastValueFrom, Observable } from 'rxjs';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { queryRows } from '../database/query-rows.js';
import { DomainError, ErrorCode, invalidRequest } from './errors.js';
import { IS_PUBLIC } from '../security/auth.decorators.js';
import { RequestContextStore } from './request-context.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const KEY = /^[A-Za-z0-9_\-:.]{1,200}$/;
/** The first answer's headers a replay repeats: what was written, its version, its position. */
const REPLAYED_HEADERS = ['location', 'etag', 'x-write-lsn'] as const;
/** An in-progress key older than this belongs to a request that died before committing. */
const ABANDONED_MS = 60_000;

interface KeyRow {
  requestSha256: string;
  status: 'in_progress' | 'completed';
  committed: boolean;
  responseStatus: number | null;
  responseBody: unknown;
  responseHeaders: Record<string, string> | null;
  ageMs: number;
}

/** `idempotency_keys`: one row per (API key, Idempotency-Key). */
@Injectable()
export class IdempotencyRepository implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(IdempotencyRepository.name);
  private timer?: NodeJS.Timeout;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.timer = setInterval(() => void this.expire(), 3_600_000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** Inserts the key as in progress; null when it was new, else the existing row. */
  async claim(
    apiKeyId: string,
    key: string,
    method: string,
    path: string,
    sha: string,
  ): Promise<KeyRow | null> {
    const inserted = await queryRows(
      this.dataSource.manager,
      `INSERT INTO idempotency_keys (api_key_id, key, method, path, request_sha256)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (api_key_id, key) DO NOTHING RETURNING 1`,
      [apiKeyId, key, method, path, sha],
    );
    if (inserted.length > 0) {
      return null;
    }
    const rows: KeyRow[] = await this.dataSource.query(
      `SELECT request_sha256 AS "requestSha256", status, committed, response_status AS "responseStatus",
              response_body AS "responseBody", response_headers AS "responseHeaders", (extract(epoch FROM now() - created_at) * 1000)::int8 AS "ageMs"
         FROM idempotency_keys WHERE api_key_id = $1 AND key = $2`,
      [apiKeyId, key],
    );
    return rows[0] ? { ...rows[0], ageMs: Number(rows[0].ageMs) } : null;
  }

  /** Takes over a key whose request died before committing anything. */
  async restart(apiKeyId: string, key: string): Promise<boolean> {
    const rows = await queryRows(
      this.dataSource.manager,
      `UPDATE idempotency_keys SET created_at = now() WHERE api_key_id = $1 AND key = $2
          AND status = 'in_progress' AND NOT committed RETURNING 1`,
      [apiKeyId, key],
    );
    return rows.length > 0;
  }

  async complete(
    apiKeyId: string,
    key: string,
    status: number,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<void> {
    await this.dataSource.query(
      `UPDATE idempotency_keys SET status = 'completed', response_status = $3,
              response_body = $4::jsonb, response_headers = $5::jsonb, completed_at = now()
        WHERE api_key_id = $1 AND key = $2`,
      [apiKeyId, key, status, JSON.stringify(body ?? null), JSON.stringify(headers)],
    );
  }

  /** After a failed request: forget the key unless its write committed. */
  async releaseIfUncommitted(apiKeyId: string, key: string): Promise<boolean> {
    const rows = await queryRows(
      this.dataSource.manager,
      `DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND NOT committed RETURNING 1`,
      [apiKeyId, key],
    );
    return rows.length > 0;
  }

  async expire(): Promise<number> {
    try {
      const rows = await queryRows(
        this.dataSource.manager,
        `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1) RETURNING 1`,
        [this.config.database.idempotencyTtlHours],
      );
      return rows.length;
    } catch (err) {
      this.logger.warn(
        { error: (err as Error).message },
        'idempotency key expiry failed; will retry',
      );
      return 0;
    }
  }
}

/**
 * `Idempotency-Key` on POST/PUT/PATCH/DELETE: the first result is stored and a retry
 * with the same key (and the same request) gets it back instead of writing twice.
 * The key is marked committed inside the request's writing transaction, so even when
 * the first answer was a 503 "outcome unknown" (connection lost during COMMIT, a
 * failover), a retry never applies the write a second time.
 */
@Injectable()
export class IdempotencyInterceptor implements NestInterceptor {
  constructor(
    private readonly keys: IdempotencyRepository,
    private readonly reflector: Reflector,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = context.switchToHttp();
    const req = http.getRequest<FastifyRequest>();
    const header = req.headers['idempotency-key'];
    // Public routes (the dashboard's sign-in) have no caller to keep keys apart: an
    // anonymous key space would let one caller replay another's answer.
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!MUTATING.has(req.method) || header === undefined || isPublic) {
      return next.handle();
    }
    if (typeof header !== 'string' || !KEY.test(header)) {
      throw invalidRequest({
        field: 'Idempotency-Key',
        message: 'Idempotency-Key must be 1 to 200 characters of letters, digits, _ - : .',
      });
    }
    const reply = http.getResponse<FastifyReply>();
    const status =
      this.reflector.get<number | undefined>(HTTP_CODE_METADATA, context.getHandler()) ??
      (req.method === 'POST' ? 201 : 200);
    return from(this.handle(req, reply, header, status, next));
  }

  private async handle(
    req: FastifyRequest,
    reply: FastifyReply,
    key: string,
    status: number,
    next: CallHandler,
  ): Promise<unknown> {
    const ctx = RequestContextStore.get();
    const apiKeyId = ctx?.keyId;
    if (!apiKeyId) {
      return lastValueFrom(next.handle(), { defaultValue: null });
    }
    const path = req.url.split('?')[0];
    const sha = createHash('sha256')
      .update(`${req.method} ${req.url}\n${JSON.stringify(req.body ?? null)}`)
      .digest('hex');
    const existing = await this.keys.claim(apiKeyId, key, req.method, path, sha);
    if (existing) {
      if (existing.requestSha256 !== sha) {
        throw new DomainError(
          ErrorCode.Conflict,
          'this Idempotency-Key was used with a different request',
        );
      }
      if (existing.status === 'completed') {
        void reply.header('idempotent-replayed', 'true');
        for (const [name, value] of Object.entries(existing.responseHeaders ?? {})) {
          void reply.header(name, value);
        }
        return existing.responseBody;
      }
      if (existing.committed) {
        throw new DomainError(
          ErrorCode.Conflict,
          'the first request with this Idempotency-Key was applied, but its response was not recorded: read the resource instead of retrying',
        );
      }
      if (existing.ageMs < ABANDONED_MS || !(await this.keys.restart(apiKeyId, key))) {
        throw new DomainError(
          ErrorCode.Conflict,
          'a request with this Idempotency-Key is still in progress; retry later',
        );
      }
    }
    if (ctx) {
      ctx.idempotency = { apiKeyId, key };
    }
    try {
      const body = await lastValueFrom(next.handle(), { defaultValue: null });
      await this.keys.complete(apiKeyId, key, status, body, replayedHeaders(reply));
      return body;
    } catch (err) {
      // Nothing committed → the key is free for a retry; committed → it stays, and a
      // retry learns that the write was applied.
      await this.keys.releaseIfUncommitted(apiKeyId, key).catch(() => false);
      throw err;
    }
  }
}

function replayedHeaders(reply: FastifyReply): Record<string, string> {
  const kept: Record<string, string> = {};
  // set on the way out (onSend) from the request's context: taken from there
  const lsn = RequestContextStore.get()?.writeLsn;
  if (lsn) {
    kept['x-write-lsn'] = lsn;
  }
  for (const name of REPLAYED_HEADERS) {
    const value = reply.getHeader(name);
    if (value !== undefined && kept[name] === undefined) {
      kept[name] = String(value);
    }
  }
  return kept;
}

@Global()
@Module({
  providers: [
    IdempotencyRepository,
    { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
  ],
  exports: [IdempotencyRepository],
})
export class IdempotencyModule {}
