import { defaultDeserialize, defaultSerialize } from '@keyv/serialize';
import Keyv from 'keyv';
import { LruStore } from './lru-store.js';
import {
  deserializeEntry,
  L1Entry,
  l1Entry,
  serializeEntry,
  serializeL1,
} from './serialization.js';

describe('cache entry serialization', () => {
  const entries: unknown[] = [
    {
      value: {
        lsn: '0/B1000000',
        ids: ['a', 'b'],
        response: { items: [{ id: 'x', distance: 0.25, tags: [] }] },
      },
      expires: 1,
    },
    {
      value: { title: ':starts with a colon', nested: [':x', '::y', 'z'], n: null },
      expires: null,
    },
    { value: { when: new Date(0), missing: undefined, list: [1, null, 'two'] } },
    { value: { blob: Buffer.from('bytes') } },
    ':top-level string',
    'plain',
    42,
    null,
  ];

  it.each(entries.map((e) => [e]))('writes exactly what @keyv/serialize writes: %j', (entry) => {
    expect(serializeEntry(entry)).toBe(defaultSerialize(entry));
  });

  it.each(entries.map((e) => [e]))(
    'reads back exactly what @keyv/serialize reads back: %j',
    (entry) => {
      const json = serializeEntry(entry);
      expect(deserializeEntry(json)).toEqual(defaultDeserialize(json));
    },
  );

  it('takes the plain JSON.parse only where no string starts with a colon', () => {
    for (const tricky of [
      { ':key': 1 },
      [':a'],
      { a: [1, ':b'] },
      { a: 'x":y', b: ':c' },
      { nested: { deep: [{ v: ':v' }] } },
    ]) {
      const json = serializeEntry(tricky);
      expect(deserializeEntry(json)).toEqual(defaultDeserialize(json));
    }
    // a colon inside a string (or an escaped quote before one) changes nothing
    const plain = { t: 'a":b', u: 'c:d', v: '\\":' };
    expect(deserializeEntry(serializeEntry(plain))).toEqual(plain);
  });

  it('reads back through the same deserializer (colons and Buffers restored)', () => {
    const back = deserializeEntry<{ value: { title: string; blob: Buffer } }>(
      serializeEntry({ value: { title: ':x', blob: Buffer.from('hi') } }),
    );
    expect(back.value.title).toBe(':x');
    expect(Buffer.isBuffer(back.value.blob) && back.value.blob.toString()).toBe('hi');
  });

  describe('L1 entries', () => {
    const entry = {
      value: {
        title: ':colon',
        tags: ['a'],
        nested: { blob: Buffer.from('bytes'), when: new Date(0) },
      },
      expires: 123,
    };

    it('hold what a Redis round trip gives back, deeply frozen, sized by the serialized form', () => {
      const e = l1Entry(entry);
      expect(e).toBeInstanceOf(L1Entry);
      expect({ value: e.value, expires: e.expires }).toEqual(
        deserializeEntry(serializeEntry(entry)),
      );
      expect(e.bytes).toBe(serializeEntry(entry).length * 2);
      const value = e.value as { title: string; tags: string[]; nested: { blob: Buffer } };
      expect(Object.isFrozen(e)).toBe(true);
      expect(Object.isFrozen(value)).toBe(true);
      expect(Object.isFrozen(value.tags)).toBe(true);
      expect(() => value.tags.push('b')).toThrow(TypeError);
      expect(() => {
        value.title = 'changed';
      }).toThrow(TypeError);
      expect(Buffer.isBuffer(value.nested.blob)).toBe(true);
      // a copy: the caller's object stays its own, and changing it changes no entry
      entry.value.tags.push('later');
      expect(value.tags).toEqual(['a']);
      entry.value.tags.pop();
    });

    it('come back from Keyv as the same object on every hit, and count their bytes in the store', async () => {
      const store = new LruStore(100_000, () => undefined);
      const kv = new Keyv({
        store,
        useKeyPrefix: false,
        serialize: serializeL1,
        deserialize: deserializeEntry,
      });
      await kv.set('k', { id: 'r1', tags: ['x'] }, 60_000);
      const a = await kv.get<{ id: string }>('k');
      const b = await kv.get<{ id: string }>('k');
      expect(a).toEqual({ id: 'r1', tags: ['x'] });
      expect(b).toBe(a);
      expect(Object.isFrozen(a)).toBe(true);
      expect(store.bytes).toBe((store.get('k') as L1Entry).bytes + 2);
      await kv.set('gone', { id: 'r2' }, 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(await kv.get('gone')).toBeUndefined();
    });
  });
});
