import { LRUCache } from 'lru-cache';
import { L1Entry } from './serialization.js';

/** What Keyv hands the store: a frozen L1Entry (cache.tiers.ts), or a string. */
type Stored = L1Entry | string;

/**
 * Map-like adapter so Keyv can use lru-cache as its store: Keyv calls
 * `set(key, value, ttlMs)` while lru-cache takes `{ ttl }`. Bounded by bytes: an entry
 * counts its serialized size (measured once, when it is stored) plus its key.
 */
export class LruStore {
  readonly lru: LRUCache<string, Stored>;

  constructor(maxBytes: number, onEvict: () => void) {
    this.lru = new LRUCache<string, Stored>({
      maxSize: maxBytes,
      // JS strings are UTF-16: two bytes per code unit, key and value.
      sizeCalculation: (value, key) =>
        Math.max(1, (typeof value === 'string' ? value.length * 2 : value.bytes) + key.length * 2),
      ttlAutopurge: false,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') {
          onEvict();
        }
      },
    });
  }

  get(key: string): Stored | undefined {
    return this.lru.get(key);
  }

  set(key: string, value: Stored, ttl?: number): boolean {
    this.lru.set(key, value, ttl ? { ttl } : undefined);
    return true;
  }

  delete(key: string): boolean {
    return this.lru.delete(key);
  }

  has(key: string): boolean {
    return this.lru.has(key);
  }

  clear(): void {
    this.lru.clear();
  }

  keys(): string[] {
    return [...this.lru.keys()];
  }

  get bytes(): number {
    return this.lru.calculatedSize;
  }
}
