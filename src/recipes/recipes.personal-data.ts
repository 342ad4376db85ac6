import { Injectable, OnModuleInit } from '@nestjs/common';
import { CacheService } from '../cache/cache.service.js';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { RecipesRepository } from './recipes.repository.js';

/**
 * The recipes module's personal data: recipes the user authored. Erasure deletes
 * them (spec: cascade deletes), then drops them and every cached search result.
 */
@Injectable()
export class RecipesPersonalData implements OnModuleInit {
  /** Ids deleted by an erasure, until its caches are purged after the commit. */
  private readonly erased = new Map<string, string[]>();

  constructor(
    private readonly registry: PersonalDataRegistry,
    private readonly recipes: RecipesRepository,
    private readonly cache: CacheService,
  ) {}

  onModuleInit(): void {
    this.registry.register({
      kind: 'authored_recipes',
      tables: [{ table: 'recipes', userColumn: 'author_id' }],
      erasureOrder: 30,
      collect: async (m, userId) =>
        (await this.recipes.authoredBy(m, userId)).map((r) => ({
          ...r,
          createdAt: new Date(r.createdAt).toISOString(),
          updatedAt: new Date(r.updatedAt).toISOString(),
        })),
      erase: async (m, userId) => {
        const ids = await this.recipes.deleteByAuthor(m, userId);
        this.erased.set(userId, ids);
        return ids.length;
      },
      afterErase: async (userId) => {
        const ids = this.erased.get(userId) ?? [];
        this.erased.delete(userId);
        if (ids.length > 0) {
          await this.cache.invalidate('recipes', ids);
          await this.cache.invalidateType('search_results');
        }
      },
    });
  }
}
