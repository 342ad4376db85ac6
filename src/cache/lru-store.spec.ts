import { LruStore } from './lru-store.js';

describe(LruStore.name, () => {
  it('stays within its byte bound, evicting the least recently used and counting evictions', () => {
    let evictions = 0;
    const store = new LruStore(1_000, () => (evictions += 1));
    const value = 'x'.repeat(90); // (90 + 2) * 2 = 184 bytes with a two-character key
    for (let i = 0; i < 10; i++) {
      store.set(`k${i}`, value);
    }
    expect(store.bytes).toBeLessThanOrEqual(1_000);
    expect(evictions).toBeGreaterThan(0);
    expect(store.has('k9')).toBe(true);
    expect(store.has('k0')).toBe(false);
  });

  it('expires entries after their TTL', async () => {
    const store = new LruStore(10_000, () => undefined);
    store.set('a', 'v', 20);
    expect(store.get('a')).toBe('v');
    await new Promise((r) => setTimeout(r, 40));
    expect(store.get('a')).toBeUndefined();
  });
});
