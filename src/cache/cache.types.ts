import type { CacheType } from '../config/app-config.js';

export type { CacheType };

/** Every cache type, as the spec's cache_strategies names them. */
export const CACHE_TYPES: readonly CacheType[] = [
  'user_profiles',
  'recipes',
  'search_results',
  'taste_profiles',
];

export enum CacheTier {
  L1 = 'l1',
  L2 = 'l2',
}

/** The pub/sub channel that carries invalidations (never values) between instances. */
export const INVALIDATION_CHANNEL = 'dbu:cache:invalidate';
// NOTE: one channel for every database; messages carry the database so others ignore them.

export const ERASED_USERS = 'erased_users';

export interface InvalidationMessage {
  origin: string;
  database: string;
  /** A cache type, or `erased_users`: users erased (drop their data keys too). */
  type: CacheType | typeof ERASED_USERS;
  /** Ids within the type; absent = every entry of the type. */
  ids?: string[];
}
