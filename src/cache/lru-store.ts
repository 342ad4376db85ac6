import { LRUCache } from 'lru-cache';

/**
 * Map-like adapter so Keyv can use lru-cache as its store: Keyv calls
 * `set(key, value, ttlMs)` while lru-cache takes `{ ttl }`. Bounded by bytes.
 */
export class LruStore {
  readonly lru: LRUCache<string, string>;

  constructor(maxBytes: number, onEvict: () => void) {
    this.lru = new LRUCache<string, string>({
      maxSize: maxBytes,
      // JS strings are UTF-16: two bytes per code unit, key and value.
      sizeCalculation: (value, key) => Math.max(1, (value.length + key.length) * 2),
      ttlAutopurge: false,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') {
          onEvict();
        }
      },
    });
  }

  get(key: string): string | undefined {
    return this.lru.get(key);
  }

  set(key: string, value: string, ttl?: number): boolean {
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
