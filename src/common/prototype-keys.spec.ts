import {
  prototypeKeyMessage,
  refusedPrototypeKeys,
  removePrototypeKeys,
} from './prototype-keys.js';

describe('prototype-poisoning keys of a parsed body', () => {
  it('removes __proto__ anywhere and constructor holding a prototype, and notes their paths', () => {
    const body = JSON.parse(
      '{"a":{"__proto__":{"x":1},"b":[{"constructor":{"prototype":{}}}]},"__proto__":1,"c":2}',
    ) as Record<string, unknown>;
    expect(removePrototypeKeys(body)).toEqual(['__proto__', 'a.__proto__', 'a.b.0.constructor']);
    expect(JSON.stringify(body)).toBe('{"a":{"b":[{}]},"c":2}');
    expect(refusedPrototypeKeys(body)).toEqual(['__proto__', 'a.__proto__', 'a.b.0.constructor']);
    expect(({} as { x?: unknown }).x).toBeUndefined();
  });

  it('keeps a constructor without a prototype, and notes nothing for a clean body', () => {
    const body = JSON.parse('{"constructor":{"name":"x"},"prototype":1}') as object;
    expect(removePrototypeKeys(body)).toEqual([]);
    expect(body).toEqual({ constructor: { name: 'x' }, prototype: 1 });
    expect(refusedPrototypeKeys(body)).toEqual([]);
    expect(refusedPrototypeKeys(null)).toEqual([]);
    expect(removePrototypeKeys('text')).toEqual([]);
  });

  it('says why each key is refused', () => {
    expect(prototypeKeyMessage('a.__proto__')).toMatch(
      /^a\.__proto__ is refused: a key named __proto__/,
    );
    expect(prototypeKeyMessage('constructor')).toMatch(
      /^constructor is refused: a constructor holding a prototype/,
    );
  });
});
