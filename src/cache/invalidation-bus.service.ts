import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { RedisClientType } from '@keyv/redis';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { CacheMetrics } from './cache.metrics.js';
import { randomUUID } from 'node:crypto';
import {
  CacheType,
  CACHE_TYPES,
  ERASED_USERS,
  INVALIDATION_CHANNEL,
  INVALIDATION_REPLY_CHANNEL,
  InvalidationMessage,
  InvalidationReply,
} from './cache.types.js';
import { RedisService } from './redis.service.js';
import { TieredCacheService } from './tiered-cache.service.js';

/** How long a counted invalidation waits for the other instances' answers. */
const REPLY_TIMEOUT_MS = 1_000;

interface ReplyCollector {
  replies: InvalidationReply[];
  expected: number | null;
  done: () => void;
}

export interface CountedInvalidation {
  /** Answers of the other instances of this database. */
  replies: InvalidationReply[];
  /** Instances that got the message but did not answer in time. */
  unanswered: number;
}

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
  private readonly collectors = new Map<string, ReplyCollector>();

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
      .then(() =>
        sub.subscribe(INVALIDATION_REPLY_CHANNEL, (message: string) => this.receiveReply(message)),
      )
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
    if (message.origin === this.origin) {
      return;
    }
    const removed = this.apply(message);
    if (message.replyTo) {
      // Every receiver answers (0 for another database's message): the sender waits for
      // as many answers as Redis says received it.
      const reply: InvalidationReply = {
        replyTo: message.replyTo,
        origin: this.origin,
        database: this.config.database.name,
        removed,
      };
      this.redis.client
        .publish(INVALIDATION_REPLY_CHANNEL, JSON.stringify(reply))
        .catch((err: Error) =>
          this.logger.warn({ error: err.message }, 'invalidation count not answered'),
        );
    }
  }

  /** Drops what the message names from this instance's L1; returns how many entries. */
  private apply(message: InvalidationMessage): number {
    if (message.database !== this.config.database.name) {
      return 0;
    }
    if (message.type === ERASED_USERS) {
      this.notifyErased(message.ids ?? []);
      return 0;
    }
    if (!CACHE_TYPES.includes(message.type)) {
      return 0;
    }
    this.metrics.invalidationsReceived.inc({ type: message.type });
    return this.cache.dropLocal(message.type, message.ids);
  }

  private receiveReply(raw: string): void {
    let reply: InvalidationReply;
    try {
      reply = JSON.parse(raw) as InvalidationReply;
    } catch {
      this.logger.warn('ignored a malformed invalidation reply');
      return;
    }
    const collector = this.collectors.get(reply.replyTo);
    if (!collector) {
      return;
    }
    collector.replies.push(reply);
    if (collector.expected !== null && collector.replies.length >= collector.expected) {
      collector.done();
    }
  }

  /**
   * Like `publish`, then waits (at most REPLY_TIMEOUT_MS) for every other instance to
   * answer how many L1 entries it dropped. PUBLISH says how many subscribers got the
   * message, so the wait ends as soon as all of them answered.
   */
  async publishCounted(type: CacheType, ids?: string[]): Promise<CountedInvalidation> {
    if (!this.redis.isReady || !this.cache.circuit.allow()) {
      return { replies: [], unanswered: 0 };
    }
    const replyTo = randomUUID();
    let done!: () => void;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const collector: ReplyCollector = { replies: [], expected: null, done };
    this.collectors.set(replyTo, collector);
    let timer: NodeJS.Timeout | undefined;
    try {
      const receivers = await this.send(type, ids, replyTo);
      // Our own subscriber is among the receivers; it does not answer itself.
      collector.expected = Math.max(0, receivers - (this.subscribedOnce && !this.lost ? 1 : 0));
      if (collector.replies.length < collector.expected) {
        await Promise.race([
          finished,
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, REPLY_TIMEOUT_MS);
          }),
        ]);
      }
      const replies = collector.replies.filter((r) => r.database === this.config.database.name);
      return {
        replies,
        unanswered: Math.max(0, collector.expected - collector.replies.length),
      };
    } finally {
      clearTimeout(timer);
      this.collectors.delete(replyTo);
    }
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

  /** Publishes one message; returns how many subscribers received it (0 when not sent). */
  private async send(
    type: InvalidationMessage['type'],
    ids?: string[],
    replyTo?: string,
  ): Promise<number> {
    if (!this.redis.isReady || !this.cache.circuit.allow()) {
      return 0;
    }
    const message: InvalidationMessage = {
      origin: this.origin,
      database: this.config.database.name,
      type,
      ...(ids ? { ids } : {}),
      ...(replyTo ? { replyTo } : {}),
    };
    try {
      const receivers = await this.redis.client.publish(
        INVALIDATION_CHANNEL,
        JSON.stringify(message),
      );
      this.cache.circuit.success();
      this.metrics.invalidationsSent.inc({ type });
      return receivers;
    } catch (err) {
      this.cache.circuit.failure();
      this.logger.warn({ type, error: (err as Error).message }, 'invalidation not published');
      return 0;
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
