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
import { RecipeRow, RecipesRepository } from './recipes.repository.js';

export class StaleVersionError extends DomainError {
  constructor(id: string, current: number) {
    super(
      ErrorCode.PreconditionFailed,
      `recipe ${id} is at version ${current}; re-read it and retry`,
    );
  }
}

const ENTITY = 'recipe';

@Injectable()
export class RecipesService {
  constructor(
    private readonly recipes: RecipesRepository,
    private readonly router: ReadRouterService,
    @Inject(DATA_CHANGE_SINK) private readonly changes: DataChangeSink,
  ) {}

  private actor(): string | undefined {
    return RequestContextStore.get()?.keyId;
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
    return toDto(row);
  }

  async get(id: string): Promise<RecipeResponseDto> {
    const row = await this.recipes.getById(id);
    if (!row) {
      throw new NotFoundError(ENTITY, id);
    }
    return toDto(row);
  }

  /** `expectedVersion` (from If-Match) makes a stale update fail with 412 instead of losing a write. */
  async update(
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

  async setEmbedding(id: string, embedding: number[]): Promise<RecipeResponseDto> {
    return this.update(id, { embedding });
  }

  async delete(id: string): Promise<void> {
    await this.router.write(async (m) => {
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
  }

  /** Up to 100 recipes in one transaction and one statement: all or nothing. */
  async upsertBatch(dto: BatchUpsertRecipesDto): Promise<{ count: number; ids: string[] }> {
    const ids = await this.router.write(async (m) => {
      const upserted = await this.recipes.upsertBatch(m, dto.items);
      for (const id of upserted) {
        await this.changes.record(m, {
          entity: ENTITY,
          entityId: id,
          action: 'update',
          actor: this.actor(),
        });
      }
      return upserted;
    });
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
