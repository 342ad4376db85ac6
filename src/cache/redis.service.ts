import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { createClient, RedisClientType } from '@keyv/redis';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { redisClientOptions } from './redis-options.js';

/**
 * The process's Redis connection. Boot never waits for Redis: the service runs
 * without it (degraded) and the client reconnects by itself with backoff.
 */
@Injectable()
export class RedisService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(RedisService.name);
  readonly client: RedisClientType;
  private lastError: string | null = null;
  private wasReady = false;
  private shuttingDown = false;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.client = createClient(
      redisClientOptions(config.redis, {
        connectTimeout: config.redis.connectTimeoutMs,
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 6), 5_000),
      }),
    ) as RedisClientType;
    this.client.on('error', (err: Error) => {
      if (this.lastError !== err.message && !this.shuttingDown) {
        this.logger.warn({ error: err.message }, 'redis error');
      }
      this.lastError = err.message;
    });
    this.client.on('ready', () => {
      this.lastError = null;
      this.logger.log(this.wasReady ? 'redis reconnected' : 'redis connected');
      this.wasReady = true;
    });
  }

  onModuleInit(): void {
    this.client.connect().catch((err: Error) => {
      this.logger.warn(
        { error: err.message },
        'redis not reachable at boot; continuing without it',
      );
    });
  }

  get isReady(): boolean {
    return this.client.isReady;
  }

  get error(): string | null {
    return this.lastError;
  }

  /** PING with a deadline; rejects when Redis is down or slow. */
  async ping(timeoutMs: number): Promise<number> {
    if (!this.client.isReady) {
      throw new Error(this.lastError ?? 'not connected');
    }
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.client.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
    return Date.now() - started;
  }

  async onModuleDestroy(): Promise<void> {
    this.shuttingDown = true;
    if (this.client.isReady) {
      await this.client
        .close()
        .catch((err: Error) => this.logger.warn({ error: err.message }, 'closing redis'));
    } else if (this.client.isOpen) {
      // Reconnecting to a dead Redis: stop the retry loop instead of waiting for it.
      this.client.destroy();
    }
  }
}
