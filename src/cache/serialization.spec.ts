import { defaultSerialize } from '@keyv/serialize';
import { deserializeEntry, serializeEntry } from './serialization.js';

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

  it('reads back through the same deserializer (colons and Buffers restored)', () => {
    const back = deserializeEntry<{ value: { title: string; blob: Buffer } }>(
      serializeEntry({ value: { title: ':x', blob: Buffer.from('hi') } }),
    );
    expect(back.value.title).toBe(':x');
    expect(Buffer.isBuffer(back.value.blob) && back.value.blob.toString()).toBe('hi');
  });
});
