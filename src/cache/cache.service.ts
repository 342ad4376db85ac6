import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { RequestContextStore } from '../common/request-context.js';
import { CacheGenerationsService, GenerationToken } from './cache-generations.service.js';
import { CacheType, GenerationType, isGenerationType } from './cache.types.js';
import { InvalidationBusService } from './invalidation-bus.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

/** What a manual invalidation removed, tier by tier and instance by instance. */
export interface InvalidationReport {
  type: CacheType;
  /** Entries removed in Redis and in the L1 of every instance that answered (copies count). */
  removed: number;
  /** Entries removed in Redis; null when Redis could not be asked. */
  redis: number | null;
  /** L1 entries removed per instance, this one first. */
  instances: Array<{ instance: string; removed: number }>;
  /** Instances that received the invalidation but did not report in time. */
  unanswered: number;
}

/**
 * What feature modules use: the strategies on top of the tiers. Write-through:
 * after the database commit, both tiers get the new value and other instances
 * drop their L1 copy. Cache-aside: load on miss (stampede-protected).
 */
@Injectable()
export class CacheService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    readonly tiers: TieredCacheService,
    private readonly bus: InvalidationBusService,
    readonly generations: CacheGenerationsService,
  ) {}

  /** The id under which an entry of a generation type is cached for `token`. */
  static generationId(id: string, token: GenerationToken): string {
    return `${id}:${token.gen}`;
  }

  strategy(type: CacheType): AppConfig['cache']['types'][CacheType]['strategy'] {
    return this.config.cache.types[type].strategy;
  }

  /** Caching is on for this type by configuration (CACHE_ENABLED, its strategy). */
  configured(type: CacheType): boolean {
    return this.config.cache.enabled && this.strategy(type) !== 'none';
  }

  /** Caching is off for this type (or globally), or the caller asked for x-consistency: strong. */
  bypass(type: CacheType): boolean {
    return !this.configured(type) || RequestContextStore.get()?.consistency === 'strong';
  }

  /** A read through the cache by the type's strategy; null/undefined results are not cached. */
  read<T>(type: CacheType, id: string, loader: () => Promise<T>): Promise<T> {
    return this.bypass(type) ? loader() : this.tiers.getOrLoad(type, id, loader);
  }

  /** After a committed write: write-through types get the new value, cache-aside types lose the old one. */
  async afterWrite<T>(type: CacheType, id: string, value: T): Promise<void> {
    if (!this.config.cache.enabled) {
      return;
    }
    switch (this.strategy(type)) {
      case 'write_through':
      case 'write_behind':
        await this.writeThrough(type, id, value);
        return;
      case 'cache_aside':
        await this.invalidate(type, [id]);
        return;
      case 'none':
        return;
    }
  }

  get<T>(type: CacheType, id: string): Promise<T | undefined> {
    return this.tiers.get<T>(type, id);
  }

  getOrLoad<T>(
    type: CacheType,
    id: string,
    loader: () => Promise<T>,
    opts: { store?: () => boolean; accept?: (value: T) => Promise<boolean> | boolean } = {},
  ): Promise<T> {
    return this.tiers.getOrLoad(type, id, loader, opts);
  }

  /** Call after the database transaction committed. */
  async writeThrough<T>(type: CacheType, id: string, value: T): Promise<void> {
    await this.tiers.set(type, id, value);
    await this.bus.publish(type, [id]);
  }

  /** Drops entries everywhere: both tiers here, L1 of every other instance. */
  async invalidate(type: CacheType, ids: string[]): Promise<void> {
    await this.tiers.delete(type, ids);
    await this.bus.publish(type, ids);
  }

  /** Erased users, announced to every instance (see InvalidationBusService.onErased). */
  publishErased(userIds: string[]): Promise<void> {
    return this.bus.publishErased(userIds);
  }

  onErased(listener: (userIds: string[] | null) => void): void {
    this.bus.onErased(listener);
  }

  /**
   * Every entry of the type, everywhere. A generation type also gets a new generation,
   * so no instance serves an old entry even before it hears of this.
   */
  async invalidateType(type: CacheType): Promise<void> {
    if (isGenerationType(type)) {
      await this.generations.bump(type);
    }
    await this.tiers.deleteType(type);
    await this.bus.publish(type);
  }

  /** After a committed change that may put a row into any entry of `type` (see CacheGenerationsService). */
  changed(type: GenerationType, lsn?: string | null): Promise<void> {
    return this.generations.bump(type, lsn);
  }

  /** After a committed change that only makes entries of `type` holding `ids` stale. */
  touched(type: GenerationType, ids: string[], lsn?: string | null): Promise<void> {
    return this.generations.touch(type, ids, lsn);
  }

  /**
   * The ops endpoint's invalidation: by keys, or every entry of the type, in Redis and on
   * every instance, with what each removed. Keys of a generation type name entries of
   * its current generation (older ones are unreachable already).
   */
  async invalidateCounted(type: CacheType, keys?: string[]): Promise<InvalidationReport> {
    let ids = keys;
    if (isGenerationType(type)) {
      if (keys) {
        const token = await this.generations.current(type);
        ids = token ? keys.map((k) => CacheService.generationId(k, token)) : keys;
      } else {
        await this.generations.bump(type);
      }
    }
    const here = ids
      ? await this.tiers.deleteCounted(type, ids)
      : await this.tiers.deleteType(type);
    const others = await this.bus.publishCounted(type, ids);
    const instances = [
      { instance: this.bus.origin, removed: here.l1 },
      ...others.replies.map((r) => ({ instance: r.origin, removed: r.removed })),
    ];
    return {
      type,
      removed: (here.l2 ?? 0) + instances.reduce((sum, i) => sum + i.removed, 0),
      redis: here.l2,
      instances,
      unanswered: others.unanswered,
    };
  }
}
