import type { CacheType } from '../config/app-config.js';

export type { CacheType };

/** Every cache type, as the spec's cache_strategies names them. */
export const CACHE_TYPES: readonly CacheType[] = [
  'user_profiles',
  'recipes',
  'search_results',
  'taste_profiles',
];

/**
 * Types whose keys carry a generation (see CacheGenerationsService): an entry depends
 * on more rows than its key names (a search result on every recipe).
 */
export const GENERATION_TYPES = ['search_results'] as const satisfies readonly CacheType[];
export type GenerationType = (typeof GENERATION_TYPES)[number];

export function isGenerationType(type: CacheType): type is GenerationType {
  return (GENERATION_TYPES as readonly CacheType[]).includes(type);
}

export enum CacheTier {
  L1 = 'l1',
  L2 = 'l2',
}

/** The pub/sub channel that carries invalidations (never values) between instances. */
export const INVALIDATION_CHANNEL = 'dbu:cache:invalidate';
/** Where instances answer an invalidation that asked for a count (`replyTo`). */
export const INVALIDATION_REPLY_CHANNEL = 'dbu:cache:invalidate:reply';
// NOTE: one channel for every database; messages carry the database so others ignore them.

export const ERASED_USERS = 'erased_users';

export interface InvalidationMessage {
  origin: string;
  database: string;
  /** A cache type, or `erased_users`: users erased (drop their data keys too). */
  type: CacheType | typeof ERASED_USERS;
  /** Ids within the type; absent = every entry of the type. */
  ids?: string[];
  /** Set by the ops endpoint: every receiver answers how many entries it dropped. */
  replyTo?: string;
}

export interface InvalidationReply {
  replyTo: string;
  origin: string;
  database: string;
  /** L1 entries this instance dropped (0 for another database's message). */
  removed: number;
}
