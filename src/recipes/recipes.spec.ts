import { BadRequestException } from '@nestjs/common';
import { decodeCursor, encodeCursor } from '../common/pagination.js';
import { embeddingProblem } from './dto/embedding.validator.js';
import { noneMatch, parseIfMatch } from '../common/conditional.js';
import { searchEffect } from './recipes.service.js';
import { normaliseFilters } from './search.service.js';
import { parallelWorkersFor } from './vector-index.js';

describe(parallelWorkersFor.name, () => {
  it.each([
    ['0.8.0', 0],
    ['0.8.1', 0],
    ['0.7.4', 0],
    ['0.8.2', 4],
    ['0.8.7', 4],
    ['0.9.0', 4],
    ['1.0.0', 4],
  ])('pgvector %s → %i workers', (version, workers) => {
    expect(parallelWorkersFor(version, 4)).toBe(workers);
  });
});

describe(parseIfMatch.name, () => {
  it.each([
    ['"3"', 3],
    ['W/"12"', 12],
    ['7', 7],
    [' * ', '*'],
    [undefined, undefined],
  ])('%s → %s', (header, version) => {
    expect(parseIfMatch(header)).toBe(version);
  });

  it.each(['"abc"', '"1", "2"', '', '**'])('rejects %j', (header) => {
    expect(() => parseIfMatch(header)).toThrow(BadRequestException);
  });
});

describe(noneMatch.name, () => {
  it.each([
    ['"3"', true],
    ['W/"3"', true],
    ['"1", W/"3"', true],
    ['*', true],
    ['"4"', false],
    ['"1", "2"', false],
    ['3', false],
    ['garbage', false],
    [undefined, false],
  ])('If-None-Match %j against "3" → %s', (header, matches) => {
    expect(noneMatch(header, '"3"')).toBe(matches);
  });
});

describe(embeddingProblem.name, () => {
  it('accepts 1536 finite numbers', () => {
    expect(embeddingProblem(Array.from({ length: 1536 }, (_, i) => i / 1536))).toBeNull();
  });

  it.each([
    ['not an array', 'x', 'must be an array'],
    ['wrong length', [1, 2], 'got 2'],
    [
      'a string inside',
      [...new Array<number>(1535).fill(0.1), 'a'],
      'element 1535 is not a number',
    ],
    ['Infinity', [Infinity, ...new Array<number>(1535).fill(0.1)], 'element 0 is not finite'],
    ['NaN', [NaN, ...new Array<number>(1535).fill(0.1)], 'element 0 is not finite'],
    ['all zeros', new Array<number>(1536).fill(0), 'all zeros'],
  ])('names the problem: %s', (_name, value, fragment) => {
    expect(embeddingProblem(value)).toContain(fragment);
  });
});

describe(normaliseFilters.name, () => {
  it('drops empty lists and de-duplicates values', () => {
    expect(normaliseFilters({ tags: [], dietary: ['vegan', 'vegan'], cuisine: 'thai' })).toEqual({
      dietary: ['vegan'],
      cuisine: 'thai',
    });
    expect(normaliseFilters(undefined)).toEqual({});
  });
});

describe('cursor', () => {
  it('round-trips', () => {
    const c = encodeCursor('2026-11-26 03:10:11.123456+00', '7d1b0a4e-3f7e-4c89-9a43-9f1c1c0f2b11');
    expect(decodeCursor(c)).toEqual({
      createdAt: '2026-11-26 03:10:11.123456+00',
      id: '7d1b0a4e-3f7e-4c89-9a43-9f1c1c0f2b11',
    });
  });

  it.each(['garbage', Buffer.from('{"c":"x","i":"y"}').toString('base64url')])(
    'rejects %s',
    (c) => {
      expect(() => decodeCursor(c)).toThrow(BadRequestException);
    },
  );
});

describe(searchEffect.name, () => {
  it.each([
    [{ title: 'x' }, 'members'],
    [{ title: 'x', description: 'y' }, 'members'],
    [{ embedding: [1] }, 'all'],
    [{ title: 'x', tags: [] }, 'all'],
    [{ totalMinutes: 5 }, 'all'],
    [{ cuisine: 'thai' }, 'all'],
    [{ description: 'x', ingredients: ['a'], steps: ['b'] }, 'none'],
    [{}, 'none'],
  ])('%j → %s', (dto, expected) => {
    expect(searchEffect(dto)).toBe(expected);
  });
});
