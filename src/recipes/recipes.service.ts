import { Inject, Injectable } from '@nestjs/common';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import { DATA_CHANGE_SINK } from '../common/data-change.js';
import type { DataChangeSink } from '../common/data-change.js';
import { decodeCursor, encodeCursor } from '../common/pagination.js';
import { RequestContextStore } from '../common/request-context.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type {
  BatchUpsertRecipesDto,
  CreateRecipeDto,
  ListRecipesQueryDto,
  RecipeListResponseDto,
  RecipeResponseDto,
  UpdateRecipeDto,
} from './dto/recipe.dto.js';
import { CacheService } from '../cache/cache.service.js';
import { maxLsn } from '../cache/cache-generations.service.js';
import { QueuedRecipeChange, RecipeRow, RecipesRepository } from './recipes.repository.js';
import { RecipeWriteBehindService } from './recipe-write-behind.service.js';

export class StaleVersionError extends DomainError {
  constructor(id: string, current: number) {
    super(
      ErrorCode.PreconditionFailed,
      `recipe ${id} is at version ${current}; re-read it and retry`,
    );
  }
}

const ENTITY = 'recipe';

/** Fields a search answer filters or ranks on: a change may bring the recipe into any result. */
const SEARCH_FIELDS: ReadonlyArray<keyof UpdateRecipeDto> = [
  'cuisine',
  'tags',
  'dietary',
  'totalMinutes',
  'authorId',
  'embedding',
];

/**
 * What a change does to cached search results: `all` — it may put the recipe into any
 * of them (a new generation); `members` — it only alters results that already hold the
 * recipe (its title: shown, never filtered or ranked on); `none` — searches never see it.
 */
export type SearchEffect = 'all' | 'members' | 'none';

export function searchEffect(dto: UpdateRecipeDto): SearchEffect {
  if (SEARCH_FIELDS.some((f) => dto[f] !== undefined)) {
    return 'all';
  }
  return dto.title !== undefined ? 'members' : 'none';
}

@Injectable()
export class RecipesService {
  constructor(
    private readonly recipes: RecipesRepository,
    private readonly router: ReadRouterService,
    @Inject(DATA_CHANGE_SINK) private readonly changes: DataChangeSink,
    private readonly cache: CacheService,
    private readonly writeBehind: RecipeWriteBehindService,
  ) {}

  /**
   * A cache fill reads no node older than the changes this instance made or saw counted
   * (`CacheGenerationsService.knownFloor`): right after a delete, a replica that has not
   * replayed it would otherwise hand back the row, and the cache would keep it for its
   * TTL. A replica that has replayed the floor serves it; otherwise the writer does.
   */
  private atKnownFloor<T>(read: () => Promise<T>): Promise<T> {
    const ctx = RequestContextStore.get();
    const floor = maxLsn(ctx?.minLsn, this.cache.generations.knownFloor);
    if (!floor || floor === ctx?.minLsn) {
      return read();
    }
    return RequestContextStore.runAt(floor, 'cache-fill', read);
  }

  private actor(): string | undefined {
    return RequestContextStore.get()?.keyId;
  }

  /**
   * After a committed change that searches can see: cached search results it may
   * affect are stale on every instance — all of them, or (`ids`) those holding these
   * recipes. The WAL position of this request's write comes along, so the next
   * searches read nodes that have it.
   */
  private async searchesChanged(effect: SearchEffect, ids: string[] = []): Promise<void> {
    const lsn = RequestContextStore.get()?.writeLsn;
    if (effect === 'all') {
      await this.cache.changed('search_results', lsn);
    } else if (effect === 'members') {
      await this.cache.touched('search_results', ids, lsn);
    }
  }

  async create(dto: CreateRecipeDto): Promise<RecipeResponseDto> {
    const row = await this.router.write(async (m) => {
      const created = await this.recipes.create(m, dto);
      await this.changes.record(m, {
        entity: ENTITY,
        entityId: created.id,
        action: 'create',
        actor: this.actor(),
      });
      return created;
    });
    const recipe = toDto(row);
    if (dto.embedding) {
      await this.searchesChanged('all');
    }
    await this.cache.afterWrite('recipes', recipe.id, recipe);
    return recipe;
  }

  /** Cache (L1 → L2) → a queued change not yet persisted → the database. */
  async get(id: string): Promise<RecipeResponseDto> {
    const found = await this.cache.read('recipes', id, async () => {
      const queued = await this.writeBehind.pending(id);
      if (queued) {
        return queued;
      }
      const row = await this.atKnownFloor(() => this.recipes.getById(id));
      return row ? toDto(row) : null;
    });
    if (!found) {
      throw new NotFoundError(ENTITY, id);
    }
    return found;
  }

  /**
   * `expectedVersion` (from If-Match) makes a stale update fail with 412 instead of
   * losing a write. Recipes are write-behind (spec): the change is queued in Redis and
   * cached before this returns, and persisted by the flusher; with x-consistency:
   * strong, or when Redis cannot take it, the update is written through instead.
   */
  async update(
    id: string,
    dto: UpdateRecipeDto,
    expectedVersion?: number,
  ): Promise<RecipeResponseDto> {
    if (this.writeBehind.enabled && !this.cache.bypass('recipes')) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const base = (await this.writeBehind.pending(id)) ?? (await this.currentOnWriter(id));
        if (expectedVersion !== undefined && expectedVersion !== base.version) {
          throw new StaleVersionError(id, base.version);
        }
        const next: RecipeResponseDto = {
          ...base,
          ...withoutEmbedding(dto),
          hasEmbedding: base.hasEmbedding || dto.embedding !== undefined,
          version: base.version + 1,
          updatedAt: new Date().toISOString(),
        };
        // Searches read PostgreSQL: they see this change when a flush persists it (the
        // flush bumps the search generation then).
        const result = await this.writeBehind.enqueue(
          base,
          next,
          queuedChange(next, dto.embedding, this.actor()),
          searchEffect(dto),
        );
        if (result === 'queued') {
          await this.cache.writeThrough('recipes', id, next);
          return next;
        }
        if (result === 'unavailable') {
          break;
        }
        // conflict: another change was queued since we read it; read again.
      }
    }
    const written = await this.updateThrough(id, dto, expectedVersion);
    await this.searchesChanged(searchEffect(dto), [id]);
    await this.cache.afterWrite('recipes', id, written);
    return written;
  }

  private async currentOnWriter(id: string): Promise<RecipeResponseDto> {
    const row = await this.router.write((m) => this.recipes.getOnWriter(m, id));
    if (!row) {
      throw new NotFoundError(ENTITY, id);
    }
    return toDto(row);
  }

  private async updateThrough(
    id: string,
    dto: UpdateRecipeDto,
    expectedVersion?: number,
  ): Promise<RecipeResponseDto> {
    const row = await this.router.write(async (m) => {
      const current = await this.recipes.getVersionForUpdate(m, id);
      if (current === null) {
        throw new NotFoundError(ENTITY, id);
      }
      if (expectedVersion !== undefined && expectedVersion !== current) {
        throw new StaleVersionError(id, current);
      }
      const updated = await this.recipes.update(m, id, dto);
      await this.changes.record(m, {
        entity: ENTITY,
        entityId: id,
        action: 'update',
        actor: this.actor(),
        fields: Object.keys(dto),
      });
      return updated;
    });
    return toDto(row);
  }

  async setEmbedding(
    id: string,
    embedding: number[],
    expectedVersion?: number,
  ): Promise<RecipeResponseDto> {
    return this.update(id, { embedding }, expectedVersion);
  }

  /**
   * `expectedVersion` (If-Match): 412 unless the recipe is at that version, counting a
   * change still queued in write-behind (its version is the current one).
   */
  async delete(id: string, expectedVersion?: number): Promise<void> {
    const pending =
      expectedVersion !== undefined && this.writeBehind.enabled
        ? await this.writeBehind.pending(id)
        : null;
    if (pending && pending.version !== expectedVersion) {
      throw new StaleVersionError(id, pending.version);
    }
    await this.router.write(async (m) => {
      if (expectedVersion !== undefined && !pending) {
        const current = await this.recipes.getVersionForUpdate(m, id);
        if (current !== null && current !== expectedVersion) {
          throw new StaleVersionError(id, current);
        }
      }
      if (!(await this.recipes.delete(m, id))) {
        throw new NotFoundError(ENTITY, id);
      }
      await this.changes.record(m, {
        entity: ENTITY,
        entityId: id,
        action: 'delete',
        actor: this.actor(),
      });
    });
    // Results without it stay right: only those holding it are stale.
    await this.searchesChanged('members', [id]);
    await this.writeBehind.discard(id);
    await this.cache.invalidate('recipes', [id]);
  }

  /** Up to 100 recipes in one transaction and one statement: all or nothing. */
  async upsertBatch(dto: BatchUpsertRecipesDto): Promise<{ count: number; ids: string[] }> {
    const ids = await this.router.write(async (m) => {
      const upserted = await this.recipes.upsertBatch(m, dto.items);
      const actor = this.actor();
      await this.changes.recordMany(
        m,
        upserted.map((id) => ({ entity: ENTITY, entityId: id, action: 'update' as const, actor })),
      );
      return upserted;
    });
    await this.searchesChanged('all');
    await this.cache.invalidate('recipes', ids);
    return { count: ids.length, ids };
  }

  async list(query: ListRecipesQueryDto): Promise<RecipeListResponseDto> {
    const limit = query.limit ?? 20;
    const rows = await this.recipes.list({
      cuisine: query.cuisine,
      tag: query.tag,
      dietary: query.dietary,
      authorId: query.authorId,
      maxTotalMinutes: query.maxTotalMinutes,
      limit: limit + 1,
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map(toDto),
      nextCursor: rows.length > limit && last ? encodeCursor(last.cursorAt, last.id) : null,
    };
  }
}

export function toDto(row: RecipeRow): RecipeResponseDto {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    ingredients: row.ingredients,
    steps: row.steps,
    cuisine: row.cuisine,
    tags: row.tags,
    dietary: row.dietary,
    totalMinutes: row.totalMinutes,
    authorId: row.authorId,
    hasEmbedding: row.hasEmbedding,
    version: row.version,
    createdAt: new Date(row.createdAt).toISOString(),
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

function withoutEmbedding(dto: UpdateRecipeDto): Omit<UpdateRecipeDto, 'embedding'> {
  const rest: UpdateRecipeDto = { ...dto };
  delete rest.embedding;
  return rest;
}

function queuedChange(
  next: RecipeResponseDto,
  embedding: number[] | undefined,
  actor?: string,
): QueuedRecipeChange {
  return {
    title: next.title,
    description: next.description,
    ingredients: next.ingredients,
    steps: next.steps,
    cuisine: next.cuisine,
    tags: next.tags,
    dietary: next.dietary,
    totalMinutes: next.totalMinutes,
    authorId: next.authorId,
    ...(embedding ? { embedding } : {}),
    updatedAt: next.updatedAt,
    ...(actor ? { actor } : {}),
  };
}
