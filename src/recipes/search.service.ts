import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import {
  DomainError,
  ErrorCode,
  FieldError,
  invalidRequest,
  NotFoundError,
} from '../common/errors.js';
import type { SearchRecipesDto, SearchResponseDto } from './dto/search.dto.js';
import { EMBEDDING_PROVIDER } from './embedding/embedding-provider.js';
import type { EmbeddingProvider } from './embedding/embedding-provider.js';
import { RecipesRepository } from './recipes.repository.js';
import { SearchFilters, SearchResult, SearchTuning, VectorQuery } from './search-plan.js';
import { SearchRepository } from './search.repository.js';
import { SearchMetrics } from './search.metrics.js';
import { lsnReached, maxLsn } from '../cache/cache-generations.service.js';
import { CacheService } from '../cache/cache.service.js';
import { RequestContextStore } from '../common/request-context.js';
import { QUERY_CANCELED } from '../database/node-errors.js';
import { createHash } from 'node:crypto';
import { WitnessService } from './witness.service.js';

export class SearchTimeoutError extends DomainError {
  constructor(ms: number) {
    super(
      ErrorCode.Timeout,
      `vector search exceeded its ${ms} ms statement timeout; narrow the filters or retry`,
    );
  }
}

type Mode = 'embedding' | 'recipe' | 'text';

const SEARCH_RESULTS = 'search_results';

/** A cached search: the answer and what it depends on. */
interface SearchEntry {
  /** The WAL position its reads had reached at least. */
  lsn: string | null;
  /** The generations' clock when it was computed (CacheGenerationsService). */
  at: string;
  /** The recipes it holds (and the recipeId of more-like-this): touching one makes it stale. */
  ids: string[];
  response: SearchResponseDto;
}

/** PostgreSQL's query_canceled, raised by statement_timeout. */

@Injectable()
export class SearchService implements OnApplicationShutdown {
  private readonly logger = new Logger(SearchService.name);
  /** Recall checks run off the request path; tracked so shutdown waits for them. */
  private readonly pendingChecks = new Set<Promise<void>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly recipes: RecipesRepository,
    private readonly searches: SearchRepository,
    private readonly metrics: SearchMetrics,
    @Inject(EMBEDDING_PROVIDER) private readonly provider: EmbeddingProvider | null,
    private readonly cache: CacheService,
    private readonly witnesses: WitnessService,
  ) {}

  /** Validates the parts class-validator cannot see: one mode, limit within the configured cap. */
  private check(dto: SearchRecipesDto): Mode {
    const problems: FieldError[] = [];
    const given = (['embedding', 'recipeId', 'text'] as const).filter((k) => dto[k] !== undefined);
    if (given.length !== 1) {
      const message =
        given.length === 0
          ? 'exactly one of embedding, recipeId, text must be given'
          : `exactly one of embedding, recipeId, text must be given (got ${given.join(', ')})`;
      const fields = given.length === 0 ? ['embedding', 'recipeId', 'text'] : given;
      problems.push(...fields.map((field) => ({ field, message })));
    }
    const cap = this.config.vector.candidateLimit;
    if (dto.limit !== undefined && dto.limit > cap) {
      problems.push({ field: 'limit', message: `limit must not be greater than ${cap}` });
    }
    if (dto.text !== undefined && !this.provider) {
      problems.push({
        field: 'text',
        message:
          'text search needs an embedding provider (EMBEDDINGS_PROVIDER is none); send embedding or recipeId',
      });
    }
    if (problems.length > 0) {
      throw invalidRequest(...problems);
    }
    return dto.embedding ? 'embedding' : dto.recipeId ? 'recipe' : 'text';
  }

  async search(dto: SearchRecipesDto): Promise<SearchResponseDto> {
    const mode = this.check(dto);
    const started = performance.now();
    const result = await this.coherent(dto, mode);
    return { ...result, tookMs: Math.round((performance.now() - started) * 100) / 100 };
  }

  /**
   * Search results are cache-aside (spec: 15 min) under a hash of the normalised query
   * and the recipes' generation (CacheGenerationsService), which every committed change
   * that may bring a recipe into a result bumps; changes that can only alter results
   * holding the recipe (a delete, a new title) mark it instead, and an entry holding a
   * recipe marked after it was computed is stale. The generation is read before the
   * query runs, and the query runs on a node that has replayed every change counted so
   * far (and the caller's own writes, `x-write-lsn`), so an entry is never older than a
   * change made before it was read.
   * Without a usable generation (cache off, Redis down, re-synchronising) nothing is
   * cached and the query still waits for what this instance knows has changed.
   */
  private async coherent(dto: SearchRecipesDto, mode: Mode): Promise<SearchResponseDto> {
    const minLsn = RequestContextStore.get()?.minLsn;
    const generations = this.cache.generations;
    const token = this.cache.bypass(SEARCH_RESULTS)
      ? null
      : await RequestContextStore.timed('gen', () => generations.current(SEARCH_RESULTS));
    if (!token) {
      return this.computeAt(dto, mode, maxLsn(minLsn, generations.knownFloor));
    }
    const floor = maxLsn(minLsn, token.lsn);
    const id = CacheService.generationId(searchKey(dto, this.config), token);
    const load = async (): Promise<SearchEntry> => {
      const response = await this.computeAt(dto, mode, floor);
      const ids = response.items.map((h) => h.id);
      return {
        lsn: floor,
        at: token.clock,
        ids: dto.recipeId ? [...ids, dto.recipeId] : ids,
        response,
      };
    };
    // Fresh enough for this caller's own writes, and none of its recipes deleted or
    // retitled since it was computed (asked only when something was touched since).
    let accepted: SearchEntry | undefined;
    const accept = async (e: SearchEntry): Promise<boolean> => {
      const ok =
        lsnReached(e.lsn, minLsn) &&
        (Number(e.at) >= Number(token.clock) ||
          (await generations.touchedSince(SEARCH_RESULTS, e.ids, e.at)) === false);
      if (ok) {
        accepted = e;
      }
      return ok;
    };
    const entry = await this.cache.getOrLoad(SEARCH_RESULTS, id, load, {
      store: () => generations.isCurrent(token),
      accept,
    });
    // (A load shared with a concurrent request is checked here.)
    if (entry === accepted || (await accept(entry))) {
      return entry.response;
    }
    // Computed before the caller's write reached the nodes it read (a bump lost on the
    // way): answer from this position and keep the fresher entry.
    const fresh = await load();
    if (generations.isCurrent(token)) {
      await this.cache.tiers.set(SEARCH_RESULTS, id, fresh);
    }
    return fresh.response;
  }

  /** Runs the search with its reads held to nodes that have replayed `floor`. */
  private computeAt(
    dto: SearchRecipesDto,
    mode: Mode,
    floor: string | null,
  ): Promise<SearchResponseDto> {
    return RequestContextStore.runAt(floor, 'search', () => this.compute(dto, mode));
  }

  private async compute(dto: SearchRecipesDto, mode: Mode): Promise<SearchResponseDto> {
    const started = performance.now();
    let embedding: number[];
    let excludeId: string | undefined;
    if (mode === 'embedding') {
      embedding = dto.embedding!;
    } else if (mode === 'recipe') {
      embedding = await this.embeddingOf(dto.recipeId!);
      excludeId = dto.recipeId;
    } else {
      embedding = await this.provider!.embed(dto.text!);
    }
    const query: VectorQuery = {
      embedding,
      filters: normaliseFilters(dto.filters),
      excludeId,
      limit: dto.limit ?? this.config.vector.resultLimit,
      maxDistance: dto.maxDistance ?? this.config.vector.maxDistance,
    };
    const result = await this.run(query, mode);
    this.maybeCheckRecall(query, result);
    return {
      items: result.hits.map((h) => ({ ...h, distance: Number(h.distance) })),
      tookMs: Math.round((performance.now() - started) * 100) / 100,
      plan: result.plan,
    };
  }

  /** More-like-this for GET /v1/recipes/:id/similar. */
  similar(id: string, limit?: number, maxDistance?: number): Promise<SearchResponseDto> {
    return this.search({ recipeId: id, limit, maxDistance });
  }

  tuning(limit: number): SearchTuning {
    const v = this.config.vector;
    return {
      // ef_search must be at least the number of rows asked for, or the index cannot return them.
      efSearch: Math.max(v.efSearch, limit * v.efSearchPerResult),
      escalationEfSearch: v.escalationEfSearch,
      escalationExactConcurrency: v.escalationExactConcurrency,
      maxScanTuples: v.maxScanTuples,
      exactMaxRows: v.exactMaxRows,
      planMemoryMs: v.planMemoryMs,
      timeoutMs: v.queryTimeoutMs,
    };
  }

  /**
   * Escalations are logged at most once a minute with the count since the last line:
   * a population the index barely links to can make many searches escalate at once.
   */
  private escalationsSinceLog = 0;
  private escalationLoggedAt = 0;
  private noteEscalation(result: SearchResult): void {
    this.escalationsSinceLog++;
    const now = Date.now();
    if (now - this.escalationLoggedAt < 60_000) {
      return;
    }
    const e = result.escalation!;
    this.logger.warn(
      {
        escalations: this.escalationsSinceLog,
        answeredBy: e.outcome,
        witnessDistance: Math.round(e.witnessDistance * 1e4) / 1e4,
        lastDistance: Math.round(e.lastDistance * 1e4) / 1e4,
      },
      'HNSW answer missed a nearer sampled row; searched again (a REINDEX may be due if this repeats)',
    );
    this.escalationsSinceLog = 0;
    this.escalationLoggedAt = now;
  }

  private async embeddingOf(id: string): Promise<number[]> {
    const { found, embedding } = await this.recipes.getEmbedding(id);
    if (!found) {
      throw new NotFoundError('recipe', id);
    }
    if (!embedding) {
      throw invalidRequest({ field: 'recipeId', message: `recipeId ${id} has no embedding yet` });
    }
    return embedding;
  }

  private async run(query: VectorQuery, mode: Mode): Promise<SearchResult> {
    const started = performance.now();
    try {
      const result = await this.searches.search(
        query,
        this.tuning(query.limit),
        this.witnesses.set,
      );
      const filtered = String(Object.keys(query.filters).length > 0);
      if (result.escalation) {
        this.metrics.escalations.inc({ outcome: result.escalation.outcome, filtered });
        this.noteEscalation(result);
      }
      this.metrics.duration.observe(
        { plan: result.plan, mode, filtered },
        (performance.now() - started) / 1000,
      );
      if (result.exactFallback) {
        this.metrics.exactFallbacks.inc({ filtered });
      }
      this.metrics.returned.observe({ plan: result.plan }, result.hits.length);
      return result;
    } catch (err) {
      if ((err as { code?: string }).code === QUERY_CANCELED) {
        throw new SearchTimeoutError(this.config.vector.queryTimeoutMs);
      }
      throw err;
    }
  }

  /** performance.now() before which no recall check starts (VECTOR_RECALL_CHECK_BUDGET). */
  private nextRecallCheckAt = 0;

  /**
   * A sampled fraction of searches is re-run exactly, after the response, to measure
   * recall. An exact search reads every matching row, so at most one runs at a time
   * per instance (single-worker), samples that arrive meanwhile are skipped, and after
   * a check the next waits so that checks take at most `recallCheckBudget` of the time:
   * the measurement must not become the load.
   */
  private maybeCheckRecall(query: VectorQuery, result: SearchResult): void {
    const { recallSampleRate: rate, recallCheckBudget: budget } = this.config.vector;
    if (
      rate <= 0 ||
      this.pendingChecks.size > 0 ||
      performance.now() < this.nextRecallCheckAt ||
      Math.random() >= rate
    ) {
      return;
    }
    const started = performance.now();
    const check = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        await this.checkRecall(query, result);
      })
      .catch((err: Error) => this.logger.warn({ error: err.message }, 'recall check failed'))
      .finally(() => {
        const ended = performance.now();
        this.nextRecallCheckAt = ended + (ended - started) * (1 / budget - 1);
        this.pendingChecks.delete(check);
      });
    this.pendingChecks.add(check);
  }

  async checkRecall(query: VectorQuery, result: SearchResult): Promise<number | null> {
    const exact = await this.searches.exactIds(query, this.config.vector.queryTimeoutMs * 10);
    if (exact.length === 0) {
      return null;
    }
    const got = new Set(result.hits.map((h) => h.id));
    const recall = exact.filter((id) => got.has(id)).length / exact.length;
    this.metrics.recall.observe(
      { plan: result.plan, filtered: String(Object.keys(query.filters).length > 0) },
      recall,
    );
    if (recall < 0.9) {
      this.logger.warn(
        { recall, plan: result.plan, limit: query.limit },
        'sampled search recall below 0.9',
      );
    }
    return recall;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.pendingChecks]);
  }
}

/** Drops empty filter values so `{ tags: [] }` means "no tag filter". */
export function normaliseFilters(f: SearchRecipesDto['filters']): SearchFilters {
  const out: SearchFilters = {};
  if (!f) {
    return out;
  }
  if (f.cuisine !== undefined) {
    out.cuisine = f.cuisine;
  }
  if (f.tags?.length) {
    out.tags = [...new Set(f.tags)];
  }
  if (f.dietary?.length) {
    out.dietary = [...new Set(f.dietary)];
  }
  if (f.maxTotalMinutes !== undefined) {
    out.maxTotalMinutes = f.maxTotalMinutes;
  }
  if (f.authorId !== undefined) {
    out.authorId = f.authorId;
  }
  return out;
}

/**
 * Cache key of a search: SHA-256 of its normalised form (defaults applied, filters
 * sorted) as JSON, the embedding's numbers appended as float64 bytes (formatting 1,536
 * numbers as text cost more than the rest of the key; the JSON holds their count).
 */
export function searchKey(dto: SearchRecipesDto, config: AppConfig): string {
  const f = normaliseFilters(dto.filters);
  const normalised = {
    embedding: dto.embedding ? dto.embedding.length : null,
    recipeId: dto.recipeId ?? null,
    text: dto.text?.trim() ?? null,
    filters: {
      cuisine: f.cuisine ?? null,
      tags: f.tags ? [...f.tags].sort() : null,
      dietary: f.dietary ? [...f.dietary].sort() : null,
      maxTotalMinutes: f.maxTotalMinutes ?? null,
      authorId: f.authorId ?? null,
    },
    limit: dto.limit ?? config.vector.resultLimit,
    maxDistance: dto.maxDistance ?? config.vector.maxDistance,
  };
  const hash = createHash('sha256').update(JSON.stringify(normalised));
  if (dto.embedding) {
    hash.update(new Uint8Array(Float64Array.from(dto.embedding).buffer));
  }
  return hash.digest('hex');
}
