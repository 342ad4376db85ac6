import { ValidationError } from 'class-validator';
import { genReqId, validationFieldErrors, validationMessages } from './app.setup.js';

describe(genReqId.name, () => {
  it('echoes a sane caller id', () => {
    expect(genReqId({ headers: { 'x-request-id': 'abc-123' } })).toBe('abc-123');
  });

  it.each([['has spaces'], ['x'.repeat(200)], ['<script>']])(
    'replaces an unsafe id %j with a UUID',
    (id) => {
      expect(genReqId({ headers: { 'x-request-id': id } })).toMatch(/^[0-9a-f-]{36}$/);
    },
  );
});

describe(validationMessages.name, () => {
  it('names nested fields by path', () => {
    const child = Object.assign(new ValidationError(), {
      property: 'cuisine',
      constraints: { isString: 'cuisine must be a string' },
    });
    const parent = Object.assign(new ValidationError(), {
      property: 'filters',
      children: [child],
      constraints: {},
    });
    const top = Object.assign(new ValidationError(), {
      property: 'limit',
      constraints: { max: 'limit must not be greater than 50' },
    });
    expect(validationMessages([parent, top])).toEqual([
      'filters.cuisine must be a string',
      'limit must not be greater than 50',
    ]);
    expect(validationFieldErrors([parent, top])).toEqual([
      { field: 'filters.cuisine', message: 'filters.cuisine must be a string' },
      { field: 'limit', message: 'limit must not be greater than 50' },
    ]);
  });
});
