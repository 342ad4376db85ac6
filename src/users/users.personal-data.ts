import { Injectable, OnModuleInit } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { CacheService } from '../cache/cache.service.js';
import { TieredCacheService } from '../cache/tiered-cache.service.js';
import type { CacheType } from '../cache/cache.types.js';
import { PersonalDataProvider, PersonalDataRegistry } from '../common/personal-data.js';
import { queryRows } from '../database/query-rows.js';
import { UsersRepository } from './users.repository.js';

const CACHED: CacheType[] = ['user_profiles', 'taste_profiles'];

/** The users module's personal data: the user row, the profile, the taste profile. */
@Injectable()
export class UsersPersonalData implements OnModuleInit {
  constructor(
    private readonly registry: PersonalDataRegistry,
    private readonly users: UsersRepository,
    private readonly cache: CacheService,
    private readonly tiers: TieredCacheService,
  ) {}

  onModuleInit(): void {
    const profile: PersonalDataProvider = {
      kind: 'profile',
      tables: [{ table: 'user_profiles', userColumn: 'user_id' }],
      erasureOrder: 10,
      collect: async (m, userId) => {
        const p = await this.users.profileIn(m, userId);
        return p ? [{ data: p.data, version: p.version, updatedAt: iso(p.updatedAt) }] : [];
      },
      erase: (m, userId) => deleteWhere(m, 'user_profiles', userId),
    };
    const taste: PersonalDataProvider = {
      kind: 'taste_profile',
      tables: [{ table: 'taste_profiles', userColumn: 'user_id' }],
      erasureOrder: 10,
      collect: async (m, userId) => {
        const t = await this.users.tasteIn(m, userId);
        return t
          ? [
              {
                likedCuisines: t.likedCuisines,
                likedIngredients: t.likedIngredients,
                dislikes: t.dislikes,
                hasEmbedding: t.hasEmbedding,
                version: t.version,
                updatedAt: iso(t.updatedAt),
              },
            ]
          : [];
      },
      erase: (m, userId) => deleteWhere(m, 'taste_profiles', userId),
    };
    const user: PersonalDataProvider = {
      kind: 'user',
      tables: [{ table: 'users', userColumn: 'id' }],
      erasureOrder: 100,
      collect: async (m, userId) => {
        const u = await this.users.userIn(m, userId);
        return u
          ? [{ id: u.id, email: u.email, displayName: u.displayName, createdAt: iso(u.createdAt) }]
          : [];
      },
      erase: (m, userId) => this.users.delete(m, userId),
      afterErase: async (userId) => {
        for (const type of CACHED) {
          await this.cache.invalidate(type, [userId]);
        }
      },
      leftOutside: async (userId) => {
        let left = 0;
        for (const type of CACHED) {
          const p = await this.tiers.presence(type, userId);
          // Unknown (Redis unreachable) counts as left: the report must not claim 0.
          left += (p.l1 ? 1 : 0) + (p.l2 === false ? 0 : 1);
        }
        return left;
      },
    };
    this.registry.register(profile, taste, user);
  }
}

async function deleteWhere(m: EntityManager, table: string, userId: string): Promise<number> {
  // Table names are constants of this file, never input.
  const rows = await queryRows(m, `DELETE FROM ${table} WHERE user_id = $1 RETURNING 1`, [userId]);
  return rows.length;
}

function iso(d: Date | string): string {
  return new Date(d).toISOString();
}
