import { Inject, Injectable } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { CacheService } from '../cache/cache.service.js';
import type { L1Entry } from '../cache/serialization.js';
import { bearer } from '../security/api-key.guard.js';
import { ApiKeyService } from '../security/api-key.service.js';
import { ApiRateLimiter } from '../security/api-rate-limiter.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import type { RecipeResponseDto } from './dto/recipe.dto.js';
import { noneMatch } from '../common/conditional.js';

/** `GET /v1/recipes/<id>` with no query string; anything else takes the full path. */
const RECIPE_URL = /^\/v1\/recipes\/([0-9A-Fa-f-]{36})$/;
const ROUTE = '/v1/recipes/:id';
const SCOPE = 'recipes:read';
const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The cached-read fast path (HTTP_FAST_PATH): a `GET /v1/recipes/:id` whose recipe this
 * instance holds in L1 is answered from a Fastify `onRequest` hook, before the request
 * reaches NestJS's router, middleware, guard, pipes and interceptors, with the same
 * status, headers and body the full path would send (a test compares them).
 *
 * It answers only when everything is in order: a known bearer key with `recipes:read`,
 * a point left in the key's rate limit (the limiter the guard uses), caching on for
 * recipes, no `x-consistency: strong`, a live L1 entry. In every other case it does
 * nothing and the request goes on to the full path, which authenticates, answers 401,
 * 403 or 429, reads L2 or the database, and counts the L1 miss. The answer's JSON is
 * built once per L1 entry (entries are frozen; a write replaces the entry).
 */
@Injectable()
export class RecipeReadFastPath {
  private readonly bodies = new WeakMap<L1Entry, string>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly cache: CacheService,
    private readonly keys: ApiKeyService,
    private readonly limiter: ApiRateLimiter,
    private readonly metrics: MetricsService,
  ) {}

  get enabled(): boolean {
    return this.config.http.fastPath && this.cache.configured('recipes');
  }

  /** Adds the hook (after the hook that answers 400 to malformed headers). */
  register(fastify: FastifyInstance): void {
    if (!this.enabled) {
      return;
    }
    fastify.addHook('onRequest', (request, reply, done) => {
      const entry = this.entryFor(request);
      if (!entry) {
        done();
        return;
      }
      this.answer(request, reply, entry).then(
        (answered) => {
          if (!answered) {
            done();
          }
        },
        (err: Error) => done(err),
      );
    });
  }

  /**
   * The L1 entry this request may be answered from, or undefined. (The hook runs outside
   * the request context, so `x-consistency: strong` is read from the header here, where
   * `CacheService.bypass` reads the context.)
   */
  private entryFor(request: FastifyRequest): L1Entry | undefined {
    if (request.method !== 'GET' || request.headers['x-consistency'] === 'strong') {
      return undefined;
    }
    const m = RECIPE_URL.exec(request.url);
    return m ? this.cache.tiers.peekL1('recipes', m[1]) : undefined;
  }

  private async answer(
    request: FastifyRequest,
    reply: FastifyReply,
    entry: L1Entry,
  ): Promise<boolean> {
    const secret = bearer(request.headers.authorization);
    const key = secret ? this.keys.authenticate(secret) : null;
    if (!key || !key.scopes.has(SCOPE)) {
      return false;
    }
    const remaining = await this.limiter.tryConsume(key.id);
    if (remaining === null) {
      return false;
    }
    request.apiKey = key;
    this.cache.tiers.countL1Hit('recipes');
    this.metrics.httpFastPath.inc({ route: ROUTE });
    const recipe = entry.value as RecipeResponseDto;
    const etag = `"${recipe.version}"`;
    if (noneMatch(request.headers['if-none-match'], etag)) {
      void reply
        .code(304)
        .header('etag', etag)
        .header('x-ratelimit-remaining', String(remaining))
        .send();
      return true;
    }
    let body = this.bodies.get(entry);
    if (body === undefined) {
      body = JSON.stringify(recipe);
      this.bodies.set(entry, body);
    }
    void reply
      .code(200)
      .header('etag', etag)
      .header('x-ratelimit-remaining', String(remaining))
      .header('content-type', JSON_TYPE)
      .send(body);
    return true;
  }
}
