import { canonicalJson, chainHash, GENESIS_HASH } from './audit-hash.js';

describe(canonicalJson.name, () => {
  it('is independent of key order at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [1, { y: 2, z: 1 }] }, b: 1 }),
    );
  });
});

describe(chainHash.name, () => {
  const base = {
    seq: 1,
    occurredAtMs: 1_795_651_200_000,
    eventType: 'data_modifications',
    actor: 'key-1',
    subjectId: null,
    resource: 'recipe:1',
    action: 'update',
    requestId: 'r1',
    details: { fields: ['title'] },
    prevHash: GENESIS_HASH,
  };

  it('changes when any field or the previous hash changes', () => {
    const h = chainHash(base);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    for (const change of [
      { seq: 2 },
      { actor: 'key-2' },
      { details: { fields: ['steps'] } },
      { prevHash: 'f'.repeat(64) },
    ]) {
      expect(chainHash({ ...base, ...change })).not.toBe(h);
    }
    expect(chainHash({ ...base })).toBe(h);
  });
});
