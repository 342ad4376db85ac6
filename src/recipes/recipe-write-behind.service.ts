import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { CacheMetrics } from '../cache/cache.metrics.js';
import { DATA_CHANGE_SINK } from '../common/data-change.js';
import type { DataChangeSink } from '../common/data-change.js';
import { RedisService } from '../cache/redis.service.js';
import { CacheService } from '../cache/cache.service.js';
import { TieredCacheService } from '../cache/tiered-cache.service.js';
import { RequestContext, RequestContextStore } from '../common/request-context.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type { RecipeResponseDto } from './dto/recipe.dto.js';
import type { SearchEffect } from './recipes.service.js';
import { QueuedRecipeChange, RecipesRepository } from './recipes.repository.js';

const GROUP = 'flushers';
const BATCH = 100;

/**
 * Atomically: refuse when a newer change is already queued for this recipe than
 * the one the caller read (ARGV[1] = base version), else record the new state in
 * the overlay hash and append the change to the stream (the durable queue).
 */
const ENQUEUE = `
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'recipe', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'version', ARGV[2], 'change', ARGV[6], 'queuedAt', ARGV[7], 'search', ARGV[8])
return 1`;

/** Drops the overlay only if it still holds the version that was just persisted. */
const SETTLE = `
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
return 1`;

export type EnqueueResult = 'queued' | 'conflict' | 'unavailable';

/**
 * Write-behind for recipe updates. A change is appended to a Redis stream and the
 * recipe's new state is kept in an overlay (read-your-writes) before the call
 * returns; every instance's flusher persists queued changes to PostgreSQL in
 * batches, in stream order, as versioned updates (`WHERE version < $v`, so a replay
 * changes nothing). A crashed instance's unacknowledged entries are claimed by
 * another after CACHE_WRITE_BEHIND_CLAIM_IDLE_MS (XAUTOCLAIM).
 */
@Injectable()
export class RecipeWriteBehindService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(RecipeWriteBehindService.name);
  private timer?: NodeJS.Timeout;
  private flushing: Promise<number> | null = null;
  private groupReady = false;
  private stopped = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly recipes: RecipesRepository,
    private readonly router: ReadRouterService,
    private readonly metrics: CacheMetrics,
    private readonly leadership: JobLeadershipService,
    @Inject(DATA_CHANGE_SINK) private readonly changes: DataChangeSink,
    private readonly tiers: TieredCacheService,
    private readonly cache: CacheService,
  ) {}

  get enabled(): boolean {
    return this.config.cache.enabled && this.config.cache.types.recipes.strategy === 'write_behind';
  }

  private get streamKey(): string {
    return `${this.tiers.namespace}wb:recipes`;
  }

  private overlayKey(id: string): string {
    return `${this.tiers.namespace}wb:pending:recipes:${id}`;
  }

  onApplicationBootstrap(): void {
    if (!this.enabled) {
      return;
    }
    // A Redis that restarted without its data (appendonly no) has lost the consumer
    // group too: create it again after every reconnect.
    this.redis.client.on('ready', () => {
      this.groupReady = false;
    });
    this.timer = setInterval(() => void this.flush(), this.config.cache.writeBehind.flushMs);
    this.timer.unref();
  }

  /** Forgets the queued state of a deleted recipe (its queued updates then update nothing). */
  async discard(id: string): Promise<void> {
    if (!this.enabled || !this.redis.isReady) {
      return;
    }
    try {
      await this.redis.client.del(this.overlayKey(id));
    } catch (err) {
      this.logger.warn(
        { recipe: id, error: (err as Error).message },
        'could not drop the queued state of a deleted recipe',
      );
    }
  }

  /** The queued (not yet persisted) state of a recipe, if any. */
  async pending(id: string): Promise<RecipeResponseDto | null> {
    if (!this.enabled || !this.redis.isReady) {
      return null;
    }
    try {
      const raw = await this.redis.client.hGet(this.overlayKey(id), 'recipe');
      return raw ? (JSON.parse(raw) as RecipeResponseDto) : null;
    } catch (err) {
      this.logger.warn(
        { recipe: id, error: (err as Error).message },
        'queued state unreadable; reading the database',
      );
      return null;
    }
  }

  /**
   * Queues `next` (whose version is base.version + 1). `conflict`: someone queued a
   * newer change first; `unavailable`: Redis cannot take it — write through instead.
   */
  async enqueue(
    base: RecipeResponseDto,
    next: RecipeResponseDto,
    change: QueuedRecipeChange,
    /** What the change does to cached search results once flushed (see searchEffect). */
    searchEffect: SearchEffect = 'all',
  ): Promise<EnqueueResult> {
    if (!this.enabled || !this.redis.isReady) {
      return 'unavailable';
    }
    try {
      await this.ensureGroup();
      const ok = await this.redis.client.eval(ENQUEUE, {
        keys: [this.overlayKey(base.id), this.streamKey],
        arguments: [
          String(base.version),
          String(next.version),
          JSON.stringify(next),
          base.id,
          String(this.config.cache.types.recipes.ttlSeconds * 1000),
          JSON.stringify(change),
          String(Date.now()),
          searchEffect,
        ],
      });
      return ok === 1 ? 'queued' : 'conflict';
    } catch (err) {
      this.logger.warn(
        { recipe: base.id, error: (err as Error).message },
        'write-behind queue unavailable; writing through',
      );
      return 'unavailable';
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) {
      return;
    }
    try {
      await this.redis.client.xGroupCreate(this.streamKey, GROUP, '0', { MKSTREAM: true });
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) {
        throw err;
      }
    }
    this.groupReady = true;
  }

  /** One flush round; concurrent callers share it. Returns the number of changes persisted. */
  flush(): Promise<number> {
    if (this.stopped && !this.flushing) {
      return Promise.resolve(0);
    }
    this.flushing ??= this.drain()
      .catch((err: Error) => {
        if (err.message.includes('NOGROUP')) {
          this.groupReady = false;
        }
        this.logger.warn({ error: err.message }, 'write-behind flush failed; will retry');
        return 0;
      })
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  /**
   * Rounds of up to BATCH changes until the queue is empty, so the flush rate keeps up
   * with the write rate instead of being capped at BATCH per interval.
   */
  private async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.flushOnce();
      total += n;
      if (n < BATCH) {
        return total;
      }
    }
  }

  private async flushOnce(): Promise<number> {
    if (!this.enabled || !this.redis.isReady) {
      return 0;
    }
    await this.ensureGroup();
    const consumer = this.leadership.instanceId;
    const client = this.redis.client;
    // Entries a dead consumer left unacknowledged first, then new ones.
    const claimed = await client.xAutoClaim(
      this.streamKey,
      GROUP,
      consumer,
      this.config.cache.writeBehind.claimIdleMs,
      '0-0',
      {
        COUNT: BATCH,
      },
    );
    const fresh = await client.xReadGroup(
      GROUP,
      consumer,
      { key: this.streamKey, id: '>' },
      { COUNT: BATCH },
    );
    const entries = [
      ...claimed.messages.filter((m): m is NonNullable<typeof m> => m !== null),
      ...((
        fresh as Array<{ messages: Array<{ id: string; message: Record<string, string> }> }> | null
      )?.[0]?.messages ?? []),
    ];
    if (claimed.messages.length > 0) {
      this.logger.warn(
        { claimed: claimed.messages.length },
        'claimed write-behind changes of a stopped instance',
      );
    }
    if (entries.length === 0) {
      await this.reportDepth();
      return 0;
    }
    const changes = entries.map((e) => ({
      streamId: e.id,
      id: e.message.id,
      version: Number(e.message.version),
      queuedAt: Number(e.message.queuedAt),
      change: JSON.parse(e.message.change) as QueuedRecipeChange,
      // Entries queued before the field had its values ('1', or none) count as `all`.
      searchEffect: (['none', 'members'].includes(e.message.search)
        ? e.message.search
        : 'all') as SearchEffect,
    }));
    // Stream order is queue order: applying in it keeps each recipe's changes in order.
    // Its own request context catches the commit's WAL position for the search generation.
    const flushContext: RequestContext = {
      requestId: 'write-behind-flush',
      consistency: 'default',
    };
    await RequestContextStore.run(flushContext, () => this.persist(changes));
    // Before the acknowledgement: a flush retried after a failure here tells searches
    // again (its replayed updates then change nothing, but searches are told all the same).
    if (changes.some((c) => c.searchEffect === 'all')) {
      await this.cache.changed('search_results', flushContext.writeLsn);
    } else if (changes.some((c) => c.searchEffect === 'members')) {
      const touched = changes.filter((c) => c.searchEffect === 'members').map((c) => c.id);
      await this.cache.touched('search_results', [...new Set(touched)], flushContext.writeLsn);
    }
    const ids = changes.map((c) => c.streamId);
    await client.xAck(this.streamKey, GROUP, ids);
    await client.xDel(this.streamKey, ids);
    const now = Date.now();
    for (const c of changes) {
      this.metrics.writeBehindLag.observe((now - c.queuedAt) / 1000);
      await client.eval(SETTLE, { keys: [this.overlayKey(c.id)], arguments: [String(c.version)] });
    }
    await this.reportDepth();
    this.logger.debug({ persisted: changes.length }, 'write-behind flushed');
    return changes.length;
  }

  /** Applies queued changes in one transaction, as versioned updates (a replay changes nothing). */
  private async persist(
    changes: Array<{ id: string; version: number; change: QueuedRecipeChange }>,
  ): Promise<void> {
    await this.router.write(async (m) => {
      for (const c of changes) {
        if (await this.recipes.applyQueuedChange(m, c.id, c.version, c.change)) {
          await this.changes.record(m, {
            entity: 'recipe',
            entityId: c.id,
            action: 'update',
            actor: c.change.actor,
            fields: Object.keys(c.change).filter((k) => k !== 'actor'),
          });
        }
      }
    });
  }

  private async reportDepth(): Promise<void> {
    this.metrics.writeBehindDepth.set(await this.redis.client.xLen(this.streamKey));
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.timer) {
      clearInterval(this.timer);
    }
    // Persist what this instance queued before it goes (a crash is covered by XAUTOCLAIM).
    if (this.enabled && this.redis.isReady) {
      await this.flushing;
      this.stopped = false;
      await this.flush();
      this.stopped = true;
    }
  }
}
