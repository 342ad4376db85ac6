import { LRUCache } from 'lru-cache';
import { SubjectErasedError } from '../keystore/keystore.js';
import type { Keystore } from '../keystore/keystore.js';
import { DependencyUnavailableError, DomainError, ErrorCode } from '../../common/errors.js';
import type { KeyContext, KmsProvider } from './kms.js';
import { KmsUnavailableError } from './kms.js';

/** The user's data key is gone: the user was erased (crypto-shredded). */
export class DataKeyDestroyedError extends DomainError {
  constructor() {
    super(ErrorCode.NotFound, "the user's data was erased");
  }
}

export function userKeyContext(userId: string): KeyContext {
  return { purpose: 'user-personal-data', userId };
}

/**
 * Per-user data keys: created on first write, unwrapped by the KMS on first read,
 * then held in memory for DATA_KEY_CACHE_TTL_MS (a KMS round trip per request would
 * cost latency and money). `forget` drops one at once (erasure, on every instance).
 */
export class DataKeys {
  private readonly cache: LRUCache<string, Buffer> | null;
  private readonly inflight = new Map<string, Promise<Buffer | null>>();
  /** Rotates whenever a key is forgotten: a load that began before it is not cached. */
  private generation = 0;

  constructor(
    private readonly kms: KmsProvider,
    private readonly keystore: Keystore,
    cache: { ttlMs: number; max: number },
    /** The keyed hash of a user id that erasure leaves as a tombstone. */
    private readonly subjectHash: (userId: string) => Buffer,
  ) {
    this.cache =
      cache.ttlMs > 0 && cache.max > 0 ? new LRUCache({ max: cache.max, ttl: cache.ttlMs }) : null;
  }

  /** The user's key; null when there is none (never written, or erased). */
  async find(userId: string): Promise<Buffer | null> {
    const cached = this.cache?.get(userId);
    if (cached) {
      return cached;
    }
    return this.load(userId, false);
  }

  /** The user's key, created (and stored wrapped) when the user has none yet. */
  async findOrCreate(userId: string): Promise<Buffer> {
    const cached = this.cache?.get(userId);
    if (cached) {
      return cached;
    }
    const key = await this.load(userId, true);
    if (!key) {
      throw new DataKeyDestroyedError();
    }
    return key;
  }

  forget(userId: string): void {
    this.generation += 1;
    this.cache?.delete(userId);
    this.inflight.delete(`c:${userId}`);
    this.inflight.delete(`r:${userId}`);
  }

  /** Drops every cached key (erasure messages may have been missed). */
  forgetAll(): void {
    this.generation += 1;
    this.cache?.clear();
    this.inflight.clear();
  }

  private load(userId: string, create: boolean): Promise<Buffer | null> {
    const key = `${create ? 'c' : 'r'}:${userId}`;
    const pending = this.inflight.get(key);
    if (pending) {
      return pending;
    }
    const generation = this.generation;
    const p = this.unwrapOrCreate(userId, create, generation)
      .catch((err: unknown) => {
        if (err instanceof KmsUnavailableError) {
          throw new DependencyUnavailableError('the key management service is unavailable');
        }
        if (err instanceof SubjectErasedError) {
          throw new DataKeyDestroyedError();
        }
        throw err;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async unwrapOrCreate(
    userId: string,
    create: boolean,
    generation: number,
  ): Promise<Buffer | null> {
    const context = userKeyContext(userId);
    let wrapped = await this.keystore.get(userId);
    if (!wrapped) {
      if (!create) {
        return null;
      }
      const generated = await this.kms.generateDataKey(context);
      wrapped = await this.keystore.putIfAbsent(
        userId,
        generated.wrapped,
        this.subjectHash(userId),
      );
      if (wrapped.ciphertext.equals(generated.wrapped.ciphertext)) {
        this.remember(userId, generated.plaintext, generation);
        return generated.plaintext;
      }
    }
    const plaintext = await this.kms.decryptDataKey(wrapped, context);
    this.remember(userId, plaintext, generation);
    return plaintext;
  }

  private remember(userId: string, key: Buffer, generation: number): void {
    if (generation === this.generation) {
      this.cache?.set(userId, key);
    }
  }
}
