import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { lsnToBigInt } from '../database/topology.js';
import { CacheMetrics } from './cache.metrics.js';
import { GENERATION_TYPES, GenerationType } from './cache.types.js';
import { RedisService } from './redis.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

const LSN_MAX = `
local function parse(lsn)
  if not lsn or lsn == '' then return nil end
  local hi, lo = string.match(lsn, '^(%x+)/(%x+)$')
  if not hi then return nil end
  return tonumber(hi, 16), tonumber(lo, 16)
end
local function raise_lsn(key, lsn)
  local hi, lo = parse(lsn)
  if not hi then return end
  local chi, clo = parse(redis.call('HGET', key, 'lsn'))
  if not chi or hi > chi or (hi == chi and lo > clo) then
    redis.call('HSET', key, 'lsn', lsn)
  end
end
-- A hybrid logical clock: above its previous value and at least Redis' time in µs, so a
-- Redis restored from an older snapshot never hands out a value used before.
local function tick(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local clock = math.max(tonumber(redis.call('HGET', key, 'clock') or '0') + 1, now)
  local s = string.format('%.0f', clock)
  redis.call('HSET', key, 'clock', s)
  return s
end
`;

/**
 * A change that may put a row into any entry: a new generation (= the clock), which is
 * part of every key. KEYS[1] the hash; ARGV[1] the change's LSN.
 */
const BUMP = `${LSN_MAX}
local clock = tick(KEYS[1])
redis.call('HSET', KEYS[1], 'gen', clock)
raise_lsn(KEYS[1], ARGV[1])
return redis.call('HMGET', KEYS[1], 'gen', 'lsn', 'clock')`;

/**
 * A change that can only alter or remove rows where they already are (a delete, a new
 * title): the clock moves and the rows are marked with it; only entries holding one of
 * them are stale. KEYS[1] the hash, KEYS[2] the marks (sorted set, score = clock);
 * ARGV[1] the LSN, ARGV[2] how long marks are kept (µs), ARGV[3..] the ids.
 */
const TOUCH = `${LSN_MAX}
local clock = tick(KEYS[1])
if not redis.call('HGET', KEYS[1], 'gen') then redis.call('HSET', KEYS[1], 'gen', clock) end
for i = 3, #ARGV do redis.call('ZADD', KEYS[2], clock, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', tonumber(clock) - tonumber(ARGV[2])))
raise_lsn(KEYS[1], ARGV[1])
return redis.call('HMGET', KEYS[1], 'gen', 'lsn', 'clock')`;

/** Where a type's generation lives in Redis (`namespace`: TieredCacheService.namespace). */
export function generationKey(namespace: string, type: GenerationType): string {
  return `${namespace}gen:${type}`;
}

/** The ids touched by changes that only make entries holding them stale. */
function marksKey(namespace: string, type: GenerationType): string {
  return `${namespace}gen:${type}:touched`;
}

/**
 * One bump of a type's generation with a client of its own (processes without the
 * cache module, e.g. the bulk loader). Returns the new generation.
 */
export async function bumpGeneration(
  client: RedisService['client'],
  namespace: string,
  type: GenerationType,
  lsn: string | null,
): Promise<string | null> {
  const [gen] = (await client.eval(BUMP, {
    keys: [generationKey(namespace, type)],
    arguments: [lsn ?? ''],
  })) as Array<string | null>;
  return gen;
}

/** What a cache entry of a generation-keyed type is computed under. */
export interface GenerationToken {
  type: GenerationType;
  /** Part of every key of the type: entries of older generations are never read. */
  gen: string;
  /** Every change counted so far is visible at this WAL position (null: unknown). */
  lsn: string | null;
  /** Moves with every change (bump or touch); an entry remembers the clock it was computed at. */
  clock: string;
  epoch: number;
}

/** The larger of two LSNs (either may be missing). */
export function maxLsn(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) {
    return b ?? null;
  }
  if (!b) {
    return a;
  }
  return lsnToBigInt(a) >= lsnToBigInt(b) ? a : b;
}

/** Whether `lsn` has reached `min` (no minimum: true; unknown `lsn`: false). */
export function lsnReached(
  lsn: string | null | undefined,
  min: string | null | undefined,
): boolean {
  if (!min) {
    return true;
  }
  return !!lsn && lsnToBigInt(lsn) >= lsnToBigInt(min);
}

/**
 * Generations for cache types whose entries depend on many rows at once (search
 * results depend on every recipe): one Redis hash per type holds a generation that is
 * part of every key, bumped once per committed change, and the highest WAL position of
 * those changes. An entry is computed on a node that has replayed that position and
 * stored under the generation read before the computation, so it is never older than a
 * change counted in its generation, on any instance.
 *
 * Readers ask Redis for the generation on every read (one HMGET): nothing depends on
 * pub/sub messages arriving. While Redis is unreachable, or until this instance has
 * re-synchronised after a reconnect (a bump with the writer's current WAL position,
 * which covers changes whose bumps were lost, e.g. to a Redis restart), `current()`
 * answers null and callers compute without the cache.
 */
@Injectable()
export class CacheGenerationsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(CacheGenerationsService.name);
  /** Changes with every Redis connection change: tokens of an older epoch store nothing. */
  private epoch = 0;
  private synced = false;
  private syncing: Promise<void> | null = null;
  private retry?: NodeJS.Timeout;
  private closing = false;
  /** The highest WAL position of a change this instance made or saw counted. */
  private floor: string | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly tiers: TieredCacheService,
    private readonly router: ReadRouterService,
    private readonly metrics: CacheMetrics,
  ) {}

  onModuleInit(): void {
    if (!this.config.cache.enabled) {
      return;
    }
    this.redis.client.on('ready', () => {
      // Entries of this instance's L1 were computed before a gap in which changes may
      // have gone unannounced; the generations may have gone back with a restored snapshot.
      this.unsync();
      for (const type of GENERATION_TYPES) {
        this.tiers.dropLocal(type);
      }
      void this.sync();
    });
    this.redis.client.on('error', () => this.unsync());
    this.redis.client.on('end', () => this.unsync());
  }

  onModuleDestroy(): void {
    this.closing = true;
    clearTimeout(this.retry);
  }

  private key(type: GenerationType): string {
    return generationKey(this.tiers.namespace, type);
  }

  /** The WAL position every search must see: this instance's changes and the last known floor. */
  get knownFloor(): string | null {
    return this.floor;
  }

  /**
   * The type's current generation, read from Redis; null while the cache cannot be
   * used coherently (disabled, Redis unreachable, not yet re-synchronised).
   */
  async current(type: GenerationType): Promise<GenerationToken | null> {
    if (!this.config.cache.enabled || !this.redis.isReady || !this.tiers.circuit.allow()) {
      return null;
    }
    if (!this.synced) {
      await this.sync();
      if (!this.synced) {
        return null;
      }
    }
    const epoch = this.epoch;
    let got: Array<string | null>;
    try {
      got = await this.tiers.callRedis('generation', (client) =>
        client.hmGet(this.key(type), ['gen', 'lsn', 'clock']),
      );
    } catch (err) {
      this.logger.debug({ type, error: (err as Error).message }, 'generation unreadable');
      return null;
    }
    const [gen, lsn, clock] = got;
    if (!gen || !clock) {
      // Evicted or flushed: re-synchronise before anything is cached again.
      this.unsync();
      void this.sync();
      return null;
    }
    this.floor = maxLsn(this.floor, lsn);
    return { type, gen, lsn, clock, epoch };
  }

  /**
   * Whether any of `ids` was touched after `at` (an entry's clock): true, false, or
   * null when Redis cannot say (treat as stale).
   */
  async touchedSince(type: GenerationType, ids: string[], at: string): Promise<boolean | null> {
    if (ids.length === 0) {
      return false;
    }
    try {
      const scores = await this.tiers.callRedis('generation_marks', (client) =>
        client.zmScore(marksKey(this.tiers.namespace, type), ids),
      );
      const since = Number(at);
      return scores.some((score) => score !== null && Number(score) > since);
    } catch (err) {
      this.logger.debug({ type, error: (err as Error).message }, 'touched marks unreadable');
      return null;
    }
  }

  /** Whether an entry computed under `token` may still be stored. */
  isCurrent(token: GenerationToken): boolean {
    return this.synced && token.epoch === this.epoch;
  }

  /**
   * After a committed change (`lsn`: the writer's position after the commit; unknown:
   * the writer's current one). Every instance's next read of the type misses.
   */
  async bump(type: GenerationType, lsn?: string | null): Promise<void> {
    const at = lsn ?? (await this.writerLsn().catch(() => null));
    this.floor = maxLsn(this.floor, at);
    if (!this.config.cache.enabled) {
      return;
    }
    if (!this.redis.isReady || !this.tiers.circuit.allow()) {
      // Announced by the re-synchronisation once Redis is back.
      this.unsync();
      return;
    }
    try {
      await this.runBump(type, at);
    } catch (err) {
      this.logger.warn(
        { type, error: (err as Error).message },
        'generation bump failed; the cache of this type is off until it is re-synchronised',
      );
      this.unsync();
      this.scheduleSync();
    }
  }

  /**
   * After a committed change that can only alter or remove these rows where entries
   * already hold them (a delete; a change of a field entries show but do not filter or
   * rank on): only entries holding one of them are stale. Falls back to a bump.
   */
  async touch(type: GenerationType, ids: string[], lsn?: string | null): Promise<void> {
    const at = lsn ?? (await this.writerLsn().catch(() => null));
    this.floor = maxLsn(this.floor, at);
    if (!this.config.cache.enabled) {
      return;
    }
    if (!this.redis.isReady || !this.tiers.circuit.allow()) {
      this.unsync();
      return;
    }
    try {
      const keepUs = this.config.cache.types[type].ttlSeconds * 1_000_000;
      const [, floor] = (await this.tiers.callRedis('generation_touch', (client) =>
        client.eval(TOUCH, {
          keys: [this.key(type), marksKey(this.tiers.namespace, type)],
          arguments: [at ?? '', String(keepUs), ...ids],
        }),
      )) as Array<string | null>;
      this.floor = maxLsn(this.floor, floor);
      this.metrics.generationTouches.inc({ type });
    } catch (err) {
      this.logger.warn(
        { type, error: (err as Error).message },
        'generation touch failed; the cache of this type is off until it is re-synchronised',
      );
      this.unsync();
      this.scheduleSync();
    }
  }

  private async runBump(type: GenerationType, lsn: string | null): Promise<void> {
    const [gen, floor] = (await this.tiers.callRedis('generation_bump', (client) =>
      client.eval(BUMP, { keys: [this.key(type)], arguments: [lsn ?? ''] }),
    )) as Array<string | null>;
    this.floor = maxLsn(this.floor, floor);
    this.metrics.generationBumps.inc({ type });
    this.logger.debug({ type, gen, lsn: floor }, 'generation bumped');
  }

  private unsync(): void {
    if (this.synced) {
      this.epoch += 1;
    }
    this.synced = false;
  }

  /**
   * One bump per type at the writer's current position: counts every change committed
   * so far, whether or not its own bump reached this Redis.
   */
  private sync(): Promise<void> {
    this.syncing ??= (async () => {
      if (!this.redis.isReady || this.closing) {
        return;
      }
      const epoch = this.epoch;
      const at = maxLsn(this.floor, await this.writerLsn());
      for (const type of GENERATION_TYPES) {
        await this.runBump(type, at);
      }
      if (epoch === this.epoch) {
        this.synced = true;
      }
    })()
      .catch((err: Error) => {
        this.logger.warn({ error: err.message }, 'cache generations not re-synchronised; retrying');
        this.scheduleSync();
      })
      .finally(() => {
        this.syncing = null;
      });
    return this.syncing;
  }

  private scheduleSync(): void {
    if (this.closing || this.retry) {
      return;
    }
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.synced) {
        void this.sync();
      }
    }, 1_000);
    this.retry.unref();
  }

  private writerLsn(): Promise<string> {
    return this.router.readTransaction(
      async (m) => {
        const rows: Array<{ lsn: string }> = await m.query(
          'SELECT pg_current_wal_lsn()::text AS lsn',
        );
        return rows[0].lsn;
      },
      { onWriter: true },
    );
  }
}
