import { isCatalogRaceError, isNodeDownError } from './node-errors.js';

describe(isCatalogRaceError.name, () => {
  it('knows a read that raced a replayed index drop', () => {
    const raced = Object.assign(new Error('could not open relation with OID 20220'), {
      code: 'XX000',
    });
    expect(isCatalogRaceError(raced)).toBe(true);
    expect(isNodeDownError(raced)).toBe(false);
  });

  it.each([
    ['another internal error', 'XX000', 'could not read block 7 in file "base/1/2"'],
    ['the same words with another code', '42P01', 'could not open relation with OID 20220'],
    ['a longer message', 'XX000', 'could not open relation with OID 20220; something else'],
  ])('is not %s', (_case, code, message) => {
    expect(isCatalogRaceError(Object.assign(new Error(message), { code }))).toBe(false);
  });
});
