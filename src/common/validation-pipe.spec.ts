import { ValidationPipe } from '@nestjs/common';
import { DenseArrayValidationPipe } from './validation-pipe.js';

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
