import { ValidationPipe } from '@nestjs/common';
import { DenseArrayValidationPipe, unstorableTextErrors } from './validation-pipe.js';

/** The protected walk, called as the pipe calls it before validating. */
function close(pipe: ValidationPipe, value: unknown): unknown {
  (pipe as unknown as { closeArrayGaps(v: unknown): void }).closeArrayGaps(value);
  return value;
}

function sparse(): unknown {
  // eslint-disable-next-line no-sparse-arrays
  const tags = [, 'a', , 'b'];
  const deep: unknown[] = [];
  deep[5] = { inner: [, 'x'] }; // eslint-disable-line no-sparse-arrays
  return { tags, nested: { list: deep }, numbers: [1, 2, 3] };
}

describe(DenseArrayValidationPipe.name, () => {
  it('closes the gaps of sparse arrays exactly as Nest does, at any depth', () => {
    const ours = close(new DenseArrayValidationPipe(), sparse());
    const nest = close(new ValidationPipe(), sparse());
    expect(ours).toEqual(nest);
    expect(ours).toEqual({
      tags: ['a', 'b'],
      nested: { list: [{ inner: ['x'] }] },
      numbers: [1, 2, 3],
    });
  });

  it('leaves dense arrays (what JSON.parse makes) as they are, the same objects', () => {
    const embedding = Array.from({ length: 1536 }, (_, i) => i / 1536);
    const items = [{ embedding }, { embedding: [...embedding] }];
    const body = { items };
    close(new DenseArrayValidationPipe(), body);
    expect(body.items).toBe(items);
    expect(body.items[0].embedding).toBe(embedding);
    expect(body.items[0].embedding).toHaveLength(1536);
  });

  it('closes a sparse array nested in a dense one', () => {
    // eslint-disable-next-line no-sparse-arrays
    const body = { items: [{ tags: [, 'late'] }] };
    close(new DenseArrayValidationPipe(), body);
    expect(body.items[0].tags).toEqual(['late']);
  });
});

describe(unstorableTextErrors.name, () => {
  it.each([
    ['a NUL', { title: 'a\u0000b' }, ['title']],
    ['a lone high surrogate', { items: [{ title: 'x\ud800' }] }, ['items.0.title']],
    ['a lone low surrogate in a list', { tags: ['ok', '\udc00'] }, ['tags.1']],
    ['a NUL in a key', { data: { 'k\u0000': 1 } }, ['data']],
    ['nothing wrong (a pair, an emoji)', { title: '😀 \ud83d\ude00', n: [1, 2] }, []],
  ])('names the field of %s', (_what, value, fields) => {
    expect(unstorableTextErrors(value).map((e) => e.property)).toEqual(fields);
  });

  it('repairs what it names, so validators that throw on it still run', () => {
    const value = { email: 'a\udfff@example.com' };
    unstorableTextErrors(value);
    expect(value.email).toBe('a\ufffd@example.com');
  });
});
