import { lsnReached, maxLsn } from './cache-generations.service.js';

describe(maxLsn.name, () => {
  it.each([
    ['0/16B3748', '0/16B3749', '0/16B3749'],
    ['1/0', '0/FFFFFFFF', '1/0'],
    ['A/10', null, 'A/10'],
    [undefined, '0/1', '0/1'],
    [null, undefined, null],
  ])('max(%s, %s) = %s', (a, b, expected) => {
    expect(maxLsn(a, b)).toBe(expected);
  });
});

describe(lsnReached.name, () => {
  it.each([
    ['0/20', '0/1F', true],
    ['0/20', '0/20', true],
    ['0/FFFFFFFF', '1/0', false],
    [null, '0/1', false],
    ['0/1', undefined, true],
    [null, null, true],
  ])('%s has reached %s: %s', (lsn, min, expected) => {
    expect(lsnReached(lsn, min)).toBe(expected);
  });
});
