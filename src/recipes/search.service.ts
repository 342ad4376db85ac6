import {
  BadRequestException,
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import type { SearchRecipesDto, SearchResponseDto } from './dto/search.dto.js';
import { EMBEDDING_PROVIDER } from './embedding/embedding-provider.js';
import type { EmbeddingProvider } from './embedding/embedding-provider.js';
import {
  RecipesRepository,
  SearchFilters,
  SearchResult,
  SearchTuning,
  VectorQuery,
} from './recipes.repository.js';
import { SearchMetrics } from './search.metrics.js';
import { CacheService } from '../cache/cache.service.js';
import { createHash } from 'node:crypto';

export class SearchTimeoutError extends DomainError {
  constructor(ms: number) {
    super(
      ErrorCode.Timeout,
      `vector search exceeded its ${ms} ms statement timeout; narrow the filters or retry`,
    );
  }
}

type Mode = 'embedding' | 'recipe' | 'text';

/** PostgreSQL's query_canceled, raised by statement_timeout. */
const QUERY_CANCELED = '57014';

@Injectable()
export class SearchService implements OnApplicationShutdown {
  private readonly logger = new Logger(SearchService.name);
  /** Recall checks run off the request path; tracked so shutdown waits for them. */
  private readonly pendingChecks = new Set<Promise<void>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly recipes: RecipesRepository,
    private readonly metrics: SearchMetrics,
    @Inject(EMBEDDING_PROVIDER) private readonly provider: EmbeddingProvider | null,
    private readonly cache: CacheService,
  ) {}

  /** Validates the parts class-validator cannot see: one mode, limit within the configured cap. */
  private check(dto: SearchRecipesDto): Mode {
    const problems: string[] = [];
    const given = (['embedding', 'recipeId', 'text'] as const).filter((k) => dto[k] !== undefined);
    if (given.length !== 1) {
      problems.push(
        given.length === 0
          ? 'exactly one of embedding, recipeId, text must be given'
          : `exactly one of embedding, recipeId, text must be given (got ${given.join(', ')})`,
      );
    }
    const cap = this.config.vector.candidateLimit;
    if (dto.limit !== undefined && dto.limit > cap) {
      problems.push(`limit must not be greater than ${cap}`);
    }
    if (dto.text !== undefined && !this.provider) {
      problems.push(
        'text search needs an embedding provider (EMBEDDINGS_PROVIDER is none); send embedding or recipeId',
      );
    }
    if (problems.length > 0) {
      throw new BadRequestException(problems);
    }
    return dto.embedding ? 'embedding' : dto.recipeId ? 'recipe' : 'text';
  }

  /**
   * Search results are cache-aside (spec: 15 min, manual invalidation): the key is a
   * hash of the normalised query, so equal queries share an entry.
   */
  async search(dto: SearchRecipesDto): Promise<SearchResponseDto> {
    const mode = this.check(dto);
    const started = performance.now();
    const result = await this.cache.read('search_results', searchKey(dto, this.config), () =>
      this.compute(dto, mode),
    );
    return { ...result, tookMs: Math.round((performance.now() - started) * 100) / 100 };
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
      maxScanTuples: v.maxScanTuples,
      exactMaxRows: v.exactMaxRows,
      timeoutMs: v.queryTimeoutMs,
    };
  }

  private async embeddingOf(id: string): Promise<number[]> {
    const { found, embedding } = await this.recipes.getEmbedding(id);
    if (!found) {
      throw new NotFoundError('recipe', id);
    }
    if (!embedding) {
      throw new BadRequestException([`recipeId ${id} has no embedding yet`]);
    }
    return embedding;
  }

  private async run(query: VectorQuery, mode: Mode): Promise<SearchResult> {
    const started = performance.now();
    try {
      const result = await this.recipes.search(query, this.tuning(query.limit));
      const filtered = String(Object.keys(query.filters).length > 0);
      this.metrics.duration.observe(
        { plan: result.plan, mode, filtered },
        (performance.now() - started) / 1000,
      );
      this.metrics.candidates.observe({ plan: result.plan }, result.candidates);
      this.metrics.returned.observe({ plan: result.plan }, result.hits.length);
      return result;
    } catch (err) {
      if ((err as { code?: string }).code === QUERY_CANCELED) {
        throw new SearchTimeoutError(this.config.vector.queryTimeoutMs);
      }
      throw err;
    }
  }

  /**
   * A sampled fraction of searches is re-run exactly, after the response, to measure
   * recall. An exact search reads every matching row, so at most one runs at a time
   * per instance (single-worker) and samples that arrive meanwhile are skipped: the
   * measurement must not become the load.
   */
  private maybeCheckRecall(query: VectorQuery, result: SearchResult): void {
    const rate = this.config.vector.recallSampleRate;
    if (rate <= 0 || this.pendingChecks.size > 0 || Math.random() >= rate) {
      return;
    }
    const check = new Promise<void>((resolve) => setImmediate(resolve))
      .then(async () => {
        await this.checkRecall(query, result);
      })
      .catch((err: Error) => this.logger.warn({ error: err.message }, 'recall check failed'))
      .finally(() => this.pendingChecks.delete(check));
    this.pendingChecks.add(check);
  }

  async checkRecall(query: VectorQuery, result: SearchResult): Promise<number | null> {
    const exact = await this.recipes.exactIds(query, this.config.vector.queryTimeoutMs * 10);
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

/** Cache key of a search: SHA-256 of its normalised form (defaults applied, filters sorted). */
export function searchKey(dto: SearchRecipesDto, config: AppConfig): string {
  const f = normaliseFilters(dto.filters);
  const normalised = {
    embedding: dto.embedding ?? null,
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
  return createHash('sha256').update(JSON.stringify(normalised)).digest('hex');
}
