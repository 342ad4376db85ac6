import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { RequestContextStore } from '../common/request-context.js';
import { CacheType } from './cache.types.js';
import { InvalidationBusService } from './invalidation-bus.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

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
  ) {}

  strategy(type: CacheType): AppConfig['cache']['types'][CacheType]['strategy'] {
    return this.config.cache.types[type].strategy;
  }

  /** Caching is off for this type (or globally), or the caller asked for x-consistency: strong. */
  bypass(type: CacheType): boolean {
    return (
      !this.config.cache.enabled ||
      this.strategy(type) === 'none' ||
      RequestContextStore.get()?.consistency === 'strong'
    );
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

  getOrLoad<T>(type: CacheType, id: string, loader: () => Promise<T>): Promise<T> {
    return this.tiers.getOrLoad(type, id, loader);
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

  async invalidateType(type: CacheType): Promise<number> {
    const removed = await this.tiers.deleteType(type);
    await this.bus.publish(type);
    return removed;
  }
}
