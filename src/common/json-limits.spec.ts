import { jsonLimitViolation } from './json-limits.js';

const LIMITS = { maxDepth: 4, maxKeys: 5 };

describe(jsonLimitViolation.name, () => {
  it.each([
    ['{"a":{"b":[1,[2]]}}', null],
    ['[[[[1]]]]', null],
    ['[[[[[1]]]]]', 'body: nested deeper than 4 levels'],
    ['{"a":{"b":{"c":{"d":{}}}}}', 'body: nested deeper than 4 levels'],
    ['{"a":1,"b":2,"c":3,"d":4,"e":5}', null],
    ['{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}', 'body: more than 5 object keys'],
    // brackets, braces, colons and escaped quotes inside strings do not count
    ['{"a":"[[[[[[{{{{:::::::\\"[[[["}', null],
    ['["\\\\", [[[1]]]]', null],
    ['"\\\\"', null],
    // unterminated: left to the parser
    ['{"a":"[[[[[[', null],
    ['{"a\\"":1,"b":[[[[[1]]]]]}', 'body: nested deeper than 4 levels'],
  ])('%s → %s', (text, expected) => {
    expect(jsonLimitViolation(text, LIMITS)).toBe(expected);
  });

  it('handles a body far deeper than the stack allows to recurse', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(jsonLimitViolation(deep, { maxDepth: 32, maxKeys: 10 })).toBe(
      'body: nested deeper than 32 levels',
    );
  });

  it('counts the structure of a large body of numbers (a batch of embeddings)', () => {
    const items = Array.from({ length: 100 }, (_, i) => ({
      id: String(i),
      embedding: Array.from({ length: 1536 }, (_, k) => Math.sin(i + k)),
    }));
    const text = JSON.stringify({ items });
    expect(jsonLimitViolation(text, { maxDepth: 4, maxKeys: 201 })).toBeNull();
    expect(jsonLimitViolation(text, { maxDepth: 4, maxKeys: 200 })).toBe(
      'body: more than 200 object keys',
    );
    expect(jsonLimitViolation(text, { maxDepth: 3, maxKeys: 201 })).toBe(
      'body: nested deeper than 3 levels',
    );
  });
});
