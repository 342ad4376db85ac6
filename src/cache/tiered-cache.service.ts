import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Cache } from 'cache-manager';
import type Keyv from 'keyv';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { CacheMetrics } from './cache.metrics.js';
import { CACHE_TIERS } from './cache.tiers.js';
import type { CacheTiers } from './cache.tiers.js';
import { CacheTier, CacheType, CACHE_TYPES } from './cache.types.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { RedisService } from './redis.service.js';
import { L1Entry } from './serialization.js';

const STATS_REFRESH_MS = 15_000;
/** The restart check's retries while Redis loads its snapshot (LOADING): 2 minutes. */
const RESTART_CHECK_ATTEMPTS = 480;
const RESTART_CHECK_RETRY_MS = 250;

/**
 * `dbu:<database>:v<CACHE_KEY_VERSION>:` — the database keeps deployments (and test
 * databases) that share one Redis apart; the version keeps old shapes unread.
 */
export function cacheNamespace(config: Pick<AppConfig, 'database' | 'cache'>): string {
  return `dbu:${config.database.name}:v${config.cache.keyVersion}:`;
}

/** Entries removed from each tier; l2 null when Redis could not be asked. */
export interface RemovedCounts {
  l1: number;
  l2: number | null;
}

class TimeoutError extends Error {}

/**
 * The two-level cache: L1 an in-process LRU bounded in bytes, L2 Redis, both Keyv
 * stores behind @nestjs/cache-manager. Reads go L1 → L2 (→ loader); a Redis that
 * fails trips a circuit breaker, and the service then runs on L1 and PostgreSQL
 * alone until a trial call succeeds. Keys: `dbu:v<CACHE_KEY_VERSION>:<type>:<id>`,
 * so a schema change (new version) never reads old shapes.
 */
@Injectable()
export class TieredCacheService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(TieredCacheService.name);
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly pendingFills = new Set<Promise<void>>();
  readonly circuit: CircuitBreaker;
  private timer?: NodeJS.Timeout;
  private restartCheck?: NodeJS.Timeout;
  private policyChecked = false;
  private redisRunId: string | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(CACHE_TIERS) private readonly tiers: CacheTiers,
    @Inject(CACHE_MANAGER) private readonly cacheManager: Cache,
    private readonly redis: RedisService,
    private readonly metrics: CacheMetrics,
  ) {
    this.circuit = new CircuitBreaker(
      config.cache.circuit.failureThreshold,
      config.cache.circuit.openMs,
      Date.now,
      (state) => {
        this.metrics.l2CircuitOpen.set(state === 'open' ? 1 : 0);
        this.logger.warn({ state }, 'redis circuit breaker changed state');
      },
    );
  }

  onModuleInit(): void {
    this.redis.client.on('ready', () => {
      void this.checkRedisPolicy();
      void this.dropRestoredEntries();
    });
    this.timer = setInterval(() => void this.refreshStats(), STATS_REFRESH_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
    }
    clearTimeout(this.restartCheck);
    await Promise.allSettled([...this.pendingFills]);
  }

  get enabled(): boolean {
    return this.config.cache.enabled;
  }

  /**
   * `dbu:<database>:v<CACHE_KEY_VERSION>:` — the database keeps deployments (and test
   * databases) that share one Redis apart; the version keeps old shapes unread.
   */
  get namespace(): string {
    return cacheNamespace(this.config);
  }

  key(type: CacheType, id: string): string {
    return `${this.namespace}${type}:${id}`;
  }

  private prefix(type: CacheType): string {
    return `${this.namespace}${type}:`;
  }

  ttlMs(type: CacheType): number {
    return this.config.cache.types[type].ttlSeconds * 1000;
  }

  /**
   * L1, then L2 (which refills L1). Undefined on a miss in both. An entry `accept`
   * refuses (stale by the caller's rules) counts as a miss of its tier.
   */
  async get<T>(
    type: CacheType,
    id: string,
    accept?: (value: T) => Promise<boolean> | boolean,
  ): Promise<T | undefined> {
    if (!this.config.cache.enabled) {
      return undefined;
    }
    return RequestContextStore.timed('cache', () => this.lookup(type, id, accept));
  }

  /** `get` itself: L1, then L2 (an L2 hit fills L1). */
  private async lookup<T>(
    type: CacheType,
    id: string,
    accept?: (value: T) => Promise<boolean> | boolean,
  ): Promise<T | undefined> {
    const key = this.key(type, id);
    const l1 = await this.timed(CacheTier.L1, 'get', () => this.tiers.l1.get<T>(key));
    if (l1 !== undefined && (!accept || (await accept(l1)))) {
      this.metrics.hits.inc({ tier: CacheTier.L1, type });
      return l1;
    }
    this.metrics.misses.inc({ tier: CacheTier.L1, type });
    const l2 = await this.l2<T | undefined>('get', (kv) => kv.get<T>(key));
    if (l2 === undefined || l2 === null || (accept && !(await accept(l2)))) {
      this.metrics.misses.inc({ tier: CacheTier.L2, type });
      return undefined;
    }
    this.metrics.hits.inc({ tier: CacheTier.L2, type });
    await this.tiers.l1.set(key, l2, this.ttlMs(type));
    return l2;
  }

  /**
   * This instance's L1 entry for (type, id) if it holds a live one, without awaiting
   * anything: for the cached-read fast path (src/recipes/recipe-read.fast-path.ts), which
   * answers from it or hands the request on to the full path (`get`), which then counts
   * the miss; the caller counts a hit it answers from (`countL1Hit`). The entry is
   * frozen: read it, never change it.
   */
  peekL1(type: CacheType, id: string, now = Date.now()): L1Entry | undefined {
    if (!this.config.cache.enabled) {
      return undefined;
    }
    const entry = this.tiers.l1Store.get(this.key(type, id));
    if (!(entry instanceof L1Entry) || (entry.expires !== undefined && entry.expires < now)) {
      return undefined;
    }
    return entry;
  }

  /** An L1 hit answered outside `get` (the fast path). */
  countL1Hit(type: CacheType): void {
    this.metrics.hits.inc({ tier: CacheTier.L1, type });
  }

  /** Both tiers, with the type's TTL. */
  async set<T>(type: CacheType, id: string, value: T): Promise<void> {
    if (!this.config.cache.enabled) {
      return;
    }
    const key = this.key(type, id);
    const ttl = this.ttlMs(type);
    await this.timed(CacheTier.L1, 'set', () => this.tiers.l1.set(key, value, ttl));
    await this.l2('set', (kv) => kv.set(key, value, ttl));
    this.metrics.l1Bytes.set(this.tiers.l1Store.bytes);
  }

  /**
   * A cache fill after a miss: L1 now, L2 after the response (one Redis round trip
   * less on the request path). Tracked, so shutdown waits for it.
   */
  private async fill<T>(type: CacheType, id: string, value: T): Promise<void> {
    if (!this.config.cache.enabled) {
      return;
    }
    const key = this.key(type, id);
    const ttl = this.ttlMs(type);
    await this.tiers.l1.set(key, value, ttl);
    const write = this.l2('set', (kv) => kv.set(key, value, ttl)).then(
      () => undefined,
      (err: Error) => this.logger.debug({ error: err.message }, 'L2 fill failed'),
    );
    const tracked = write.finally(() => this.pendingFills.delete(tracked));
    this.pendingFills.add(tracked);
  }

  /** Drops entries from both tiers of this instance's view (L1) and Redis (L2). */
  async delete(type: CacheType, ids: string[]): Promise<void> {
    if (!this.config.cache.enabled || ids.length === 0) {
      return;
    }
    const keys = ids.map((id) => this.key(type, id));
    if (this.circuit.allow()) {
      try {
        // cache-manager deletes from every store (L1 and L2) in one call.
        await this.withTimeout(this.cacheManager.mdel(keys));
        this.circuit.success();
        return;
      } catch (err) {
        this.circuit.failure();
        this.logger.warn(
          { type, error: (err as Error).message },
          'L2 delete failed; dropping L1 only',
        );
      }
    }
    await this.tiers.l1.deleteMany(keys);
  }

  /**
   * Whether an entry is still held in this instance's L1 or in Redis (erasure
   * verification); null for L2 when Redis cannot answer.
   */
  async presence(type: CacheType, id: string): Promise<{ l1: boolean; l2: boolean | null }> {
    const key = this.key(type, id);
    const l1 = this.tiers.l1Store.has(key);
    const l2 = await this.l2<boolean | undefined>(
      'get',
      async (kv) => (await kv.has(key)) === true,
    );
    return { l1, l2: l2 === undefined ? null : l2 };
  }

  /** Whether this instance's L1 holds the entry (diagnostics). */
  hasLocal(type: CacheType, id: string): boolean {
    return this.tiers.l1Store.has(this.key(type, id));
  }

  /** This instance's L1 copy, without touching L2 or metrics (diagnostics). */
  peekLocal<T>(type: CacheType, id: string): Promise<T | undefined> {
    return this.tiers.l1.get<T>(this.key(type, id));
  }

  /** L1 only: what another instance's invalidation message asks of us. */
  dropLocal(type: CacheType, ids?: string[]): number {
    const store = this.tiers.l1Store;
    if (ids) {
      let n = 0;
      for (const id of ids) {
        n += store.delete(this.key(type, id)) ? 1 : 0;
      }
      return n;
    }
    const prefix = this.prefix(type);
    let n = 0;
    for (const key of store.keys()) {
      if (key.startsWith(prefix) && store.delete(key)) {
        n += 1;
      }
    }
    return n;
  }

  /** Every L1 entry of every type (after a lost invalidation subscription). */
  dropAllLocal(): number {
    return CACHE_TYPES.reduce((sum, type) => sum + this.dropLocal(type), 0);
  }

  /**
   * Every entry of a type, in this instance's L1 and in Redis (SCAN + UNLINK, never
   * KEYS): how many each tier held (l2 null when Redis could not be asked).
   */
  async deleteType(type: CacheType): Promise<RemovedCounts> {
    const l1 = this.dropLocal(type);
    let l2: number | null = null;
    if (this.redis.isReady && this.circuit.allow()) {
      try {
        l2 = await this.unlinkL2(type);
        this.circuit.success();
      } catch (err) {
        this.circuit.failure();
        this.logger.warn({ type, error: (err as Error).message }, 'L2 type flush failed');
      }
    }
    return { l1, l2 };
  }

  /** Like `delete`, counting what each tier held (l2 null when Redis could not be asked). */
  async deleteCounted(type: CacheType, ids: string[]): Promise<RemovedCounts> {
    const l1 = this.dropLocal(type, ids);
    let l2: number | null = null;
    if (this.config.cache.enabled && ids.length > 0) {
      try {
        const keys = ids.map((id) => this.key(type, id));
        l2 = await this.callRedis('unlink', (client) => client.unlink(keys));
      } catch (err) {
        this.logger.warn({ type, error: (err as Error).message }, 'L2 delete failed');
      }
    }
    return { l1, l2 };
  }

  /**
   * A raw Redis command with the same deadline and circuit breaker as L2 operations;
   * rejects when Redis is not connected or the circuit is open.
   */
  async callRedis<T>(op: string, fn: (client: RedisService['client']) => Promise<T>): Promise<T> {
    if (!this.redis.isReady || !this.circuit.allow()) {
      throw new Error('redis unavailable (not connected or circuit open)');
    }
    try {
      const result = await this.timed(CacheTier.L2, op, () =>
        this.withTimeout(fn(this.redis.client)),
      );
      this.circuit.success();
      return result;
    } catch (err) {
      this.circuit.failure();
      throw err;
    }
  }

  /** Every L2 key of a type: SCAN + UNLINK in batches, never KEYS. */
  private async unlinkL2(type: CacheType): Promise<number> {
    let removed = 0;
    for await (const keys of this.redis.client.scanIterator({
      MATCH: `${this.prefix(type)}*`,
      COUNT: 500,
    })) {
      if (keys.length > 0) {
        removed += await this.redis.client.unlink(keys);
      }
    }
    return removed;
  }

  /**
   * Cache-aside read with stampede protection: concurrent misses of one key in
   * this instance share one loader call. `undefined`/`null` results are not cached,
   * nor anything when `store` says no (checked after the load); a cached value
   * `accept` refuses is a miss.
   */
  async getOrLoad<T>(
    type: CacheType,
    id: string,
    loader: () => Promise<T>,
    opts: { store?: () => boolean; accept?: (value: T) => Promise<boolean> | boolean } = {},
  ): Promise<T> {
    const cached = await this.get<T>(type, id, opts.accept);
    if (cached !== undefined) {
      return cached;
    }
    const key = this.key(type, id);
    const pending = this.inFlight.get(key) as Promise<T> | undefined;
    if (pending) {
      return pending;
    }
    const load = (async () => {
      try {
        const value = await loader();
        if (value !== undefined && value !== null && (opts.store?.() ?? true)) {
          await this.fill(type, id, value);
        }
        return value;
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, load);
    return load;
  }

  /** Runs an L2 operation unless the circuit is open; failures and timeouts feed the breaker. */
  private async l2<T>(op: string, fn: (kv: Keyv) => Promise<T>): Promise<T | undefined> {
    if (!this.redis.isReady || !this.circuit.allow()) {
      return undefined;
    }
    try {
      const result = await this.timed(CacheTier.L2, op, () => this.withTimeout(fn(this.tiers.l2)));
      this.circuit.success();
      return result;
    } catch (err) {
      this.circuit.failure();
      this.logger.debug({ op, error: (err as Error).message }, 'L2 operation failed');
      return undefined;
    }
  }

  private withTimeout<T>(promise: Promise<T>): Promise<T> {
    const ms = this.config.cache.redisOpTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      promise,
      new Promise<T>((_, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError(`redis did not answer within ${ms} ms`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private async timed<T>(tier: CacheTier, op: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.metrics.opDuration.observe({ tier, op }, (performance.now() - started) / 1000);
    }
  }

  /**
   * A Redis that restarted (new run_id) reloaded its last RDB snapshot: its entries may
   * predate writes made since, so this namespace's L2 entries are dropped (never the
   * write-behind queue). Several instances doing it at once is harmless.
   */
  private async dropRestoredEntries(attempt = 0): Promise<void> {
    clearTimeout(this.restartCheck);
    try {
      const runId = /run_id:(\S+)/.exec(await this.redis.client.info('server'))?.[1] ?? null;
      const restarted = this.redisRunId !== null && runId !== null && runId !== this.redisRunId;
      if (!restarted) {
        this.redisRunId = runId;
        return;
      }
      let removed = 0;
      for (const type of CACHE_TYPES) {
        removed += await this.unlinkL2(type);
      }
      // only now: a drop that failed half-way (LOADING, a dropped connection) runs again
      this.redisRunId = runId;
      this.dropAllLocal();
      this.logger.warn(
        { removed },
        'redis restarted (snapshot reloaded): dropped its possibly stale cache entries',
      );
    } catch (err) {
      // A restarted Redis answers LOADING until its snapshot is in memory: the check
      // waits for it (it must run before the restored entries can be read).
      if (attempt < RESTART_CHECK_ATTEMPTS && this.redis.client.isReady) {
        this.restartCheck = setTimeout(
          () => void this.dropRestoredEntries(attempt + 1),
          RESTART_CHECK_RETRY_MS,
        );
        this.restartCheck.unref();
        return;
      }
      this.logger.warn(
        { error: (err as Error).message, attempts: attempt + 1 },
        'could not check for a redis restart',
      );
    }
  }

  /** The spec's Redis runs allkeys-lru; a cache on noeviction would fail writes when full. */
  private async checkRedisPolicy(): Promise<void> {
    if (this.policyChecked) {
      return;
    }
    try {
      const info = await this.redis.client.info('memory');
      const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
      this.policyChecked = true;
      if (policy !== 'allkeys-lru') {
        this.logger.warn(
          { policy },
          'redis maxmemory-policy is not allkeys-lru (spec): cache writes may fail when Redis is full',
        );
      }
    } catch (err) {
      this.logger.warn(
        { error: (err as Error).message },
        'could not read the redis maxmemory-policy',
      );
    }
  }

  private async refreshStats(): Promise<void> {
    this.metrics.l1Bytes.set(this.tiers.l1Store.bytes);
    if (!this.redis.isReady) {
      return;
    }
    try {
      const info = await this.withTimeout(this.redis.client.info('stats'));
      const evicted = /evicted_keys:(\d+)/.exec(info)?.[1];
      if (evicted !== undefined) {
        this.metrics.l2EvictedKeys.set(Number(evicted));
      }
    } catch (err) {
      this.logger.debug({ error: (err as Error).message }, 'redis INFO stats failed');
    }
  }
}
