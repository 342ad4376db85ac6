import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { RedisClientType } from '@keyv/redis';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { CacheMetrics } from './cache.metrics.js';
import {
  CacheType,
  CACHE_TYPES,
  ERASED_USERS,
  INVALIDATION_CHANNEL,
  InvalidationMessage,
} from './cache.types.js';
import { RedisService } from './redis.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

/**
 * Cross-instance invalidation: every change publishes `{ type, ids }` (never values)
 * on one Redis channel; every other instance drops those keys from its L1. A
 * subscription that was lost may have missed messages, so on reconnect this
 * instance flushes its whole L1 — no stale L1 after a Redis blip.
 */
@Injectable()
export class InvalidationBusService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(InvalidationBusService.name);
  private subscriber: RedisClientType | null = null;
  private subscribedOnce = false;
  private lost = false;
  private closing = false;
  private readonly erasedListeners: Array<(userIds: string[] | null) => void> = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly cache: TieredCacheService,
    private readonly metrics: CacheMetrics,
    private readonly leadership: JobLeadershipService,
  ) {}

  get origin(): string {
    return this.leadership.instanceId;
  }

  onModuleInit(): void {
    const sub = this.redis.client.duplicate() as RedisClientType;
    this.subscriber = sub;
    sub.on('error', (err: Error) => {
      if (!this.lost && !this.closing) {
        this.logger.warn({ error: err.message }, 'invalidation subscription lost');
      }
      this.lost = true;
    });
    sub.on('ready', () => {
      if (this.subscribedOnce && this.lost) {
        const dropped = this.cache.dropAllLocal();
        this.notifyErased(null);
        this.logger.warn(
          { dropped },
          'invalidation subscription restored: flushed L1 (messages may have been missed)',
        );
      }
      this.lost = false;
    });
    sub
      .connect()
      .then(() => sub.subscribe(INVALIDATION_CHANNEL, (message: string) => this.receive(message)))
      .then(() => {
        this.subscribedOnce = true;
      })
      .catch((err: Error) => {
        this.lost = true;
        this.logger.warn(
          { error: err.message },
          'invalidation subscription not established at boot; will retry',
        );
      });
  }

  private receive(raw: string): void {
    let message: InvalidationMessage;
    try {
      message = JSON.parse(raw) as InvalidationMessage;
    } catch {
      this.logger.warn('ignored a malformed invalidation message');
      return;
    }
    if (message.origin === this.origin || message.database !== this.config.database.name) {
      return;
    }
    if (message.type === ERASED_USERS) {
      this.notifyErased(message.ids ?? []);
      return;
    }
    if (!CACHE_TYPES.includes(message.type)) {
      return;
    }
    this.metrics.invalidationsReceived.inc({ type: message.type });
    this.cache.dropLocal(message.type, message.ids);
  }

  /**
   * Listeners for erasures made by any instance (e.g. to drop in-memory data keys);
   * called with null after a lost subscription, when messages may have been missed.
   */
  onErased(listener: (userIds: string[] | null) => void): void {
    this.erasedListeners.push(listener);
  }

  /** Tells every instance, this one included, that these users were erased. */
  async publishErased(userIds: string[]): Promise<void> {
    this.notifyErased(userIds);
    await this.send(ERASED_USERS, userIds);
  }

  private notifyErased(userIds: string[] | null): void {
    for (const listener of this.erasedListeners) {
      listener(userIds);
    }
  }

  /** Tells the other instances to drop these entries from their L1. Best effort: Redis may be down. */
  async publish(type: CacheType, ids?: string[]): Promise<void> {
    await this.send(type, ids);
  }

  private async send(type: InvalidationMessage['type'], ids?: string[]): Promise<void> {
    if (!this.redis.isReady || !this.cache.circuit.allow()) {
      return;
    }
    const message: InvalidationMessage = {
      origin: this.origin,
      database: this.config.database.name,
      type,
      ...(ids ? { ids } : {}),
    };
    try {
      await this.redis.client.publish(INVALIDATION_CHANNEL, JSON.stringify(message));
      this.cache.circuit.success();
      this.metrics.invalidationsSent.inc({ type });
    } catch (err) {
      this.cache.circuit.failure();
      this.logger.warn({ type, error: (err as Error).message }, 'invalidation not published');
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    const sub = this.subscriber;
    if (!sub) {
      return;
    }
    if (sub.isReady) {
      await sub
        .close()
        .catch((err: Error) => this.logger.warn({ error: err.message }, 'closing subscriber'));
    } else if (sub.isOpen) {
      sub.destroy();
    }
  }
}
