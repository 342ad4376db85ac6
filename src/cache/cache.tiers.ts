import KeyvRedis from '@keyv/redis';
import Keyv from 'keyv';
import type { AppConfig } from '../config/app-config.js';
import type { CacheMetrics } from './cache.metrics.js';
import { LruStore } from './lru-store.js';
import { deserializeEntry, serializeEntry, serializeL1 } from './serialization.js';
import type { RedisService } from './redis.service.js';

export const CACHE_TIERS = Symbol('CACHE_TIERS');

export interface CacheTiers {
  l1: Keyv;
  l1Store: LruStore;
  l2: Keyv;
}

/** The Keyv stores of both tiers; @nestjs/cache-manager gets the same instances. */
export function createCacheTiers(
  config: AppConfig,
  redis: RedisService,
  metrics: CacheMetrics,
): CacheTiers {
  const l1Store = new LruStore(config.cache.l1MaxBytes, () => metrics.l1Evictions.inc());
  const l1 = new Keyv({
    store: l1Store,
    useKeyPrefix: false,
    ttl: config.cache.defaultTtlSeconds * 1000,
    // frozen objects, not strings: a hit parses nothing (serialization.ts, L1Entry)
    serialize: serializeL1,
    deserialize: deserializeEntry,
  });
  const l2 = new Keyv({
    store: new KeyvRedis(redis.client, { throwOnConnectError: false, throwOnErrors: true }),
    // Our keys are fully namespaced already: no "keyv::" prefix in Redis.
    namespace: '',
    useKeyPrefix: false,
    throwOnErrors: true,
    ttl: config.cache.defaultTtlSeconds * 1000,
    serialize: serializeEntry,
    deserialize: deserializeEntry,
  });
  // Errors are counted by the circuit breaker where each call is made; an 'error'
  // event with no listener would otherwise crash the process.
  l1.on('error', () => undefined);
  l2.on('error', () => undefined);
  return { l1, l1Store, l2 };
}
