import { ArgumentMetadata, BadRequestException, ValidationPipe } from '@nestjs/common';
import { BatchUpsertRecipesDto, ListRecipesQueryDto } from '../recipes/dto/recipe.dto.js';
import { SearchRecipesDto } from '../recipes/dto/search.dto.js';
import { PutProfileDto } from '../users/dto/user.dto.js';
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

describe(`${DenseArrayValidationPipe.name}: long arrays of numbers`, () => {
  const pipe = (): DenseArrayValidationPipe =>
    new DenseArrayValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true });
  const body = (metatype: ArgumentMetadata['metatype']): ArgumentMetadata => ({
    type: 'body',
    metatype,
  });
  const vector = (seed: number): number[] =>
    Array.from({ length: 1536 }, (_, i) => ((i * 7 + seed) % 97) / 97 - 0.5);

  it('validates the very arrays that were sent, and leaves them in the body', async () => {
    const embedding = vector(1);
    const sent = { embedding, limit: 5 };
    const dto = (await pipe().transform(sent, body(SearchRecipesDto))) as SearchRecipesDto;
    expect(dto).toBeInstanceOf(SearchRecipesDto);
    expect(dto.embedding).toBe(embedding);
    expect(sent.embedding).toBe(embedding);
    expect(embedding).toHaveLength(1536);
  });

  it('puts back every item of a batch, each at its own index', async () => {
    const items = [0, 1, 2].map((i) => ({
      title: `t${i}`,
      ingredients: ['a'],
      steps: ['b'],
      cuisine: 'x',
      totalMinutes: 5,
      embedding: vector(i),
    }));
    const sent = { items };
    const dto = (await pipe().transform(sent, body(BatchUpsertRecipesDto))) as {
      items: Array<{ embedding: number[] }>;
    };
    expect(dto.items.map((item) => item.embedding)).toEqual(items.map((i) => i.embedding));
    dto.items.forEach((item, i) => expect(item.embedding).toBe(items[i].embedding));
  });

  it('still refuses a bad embedding, by its path, and the body keeps it', async () => {
    const bad = vector(3).map(() => 0);
    const short = vector(4).slice(0, 100);
    const sent = {
      items: [
        { title: 'a', ingredients: ['a'], steps: ['b'], cuisine: 'x', totalMinutes: 5 },
        {
          title: 'b',
          ingredients: ['a'],
          steps: ['b'],
          cuisine: 'x',
          totalMinutes: 5,
          embedding: bad,
        },
        {
          title: 'c',
          ingredients: ['a'],
          steps: ['b'],
          cuisine: 'x',
          totalMinutes: 5,
          embedding: short,
        },
      ],
    };
    const error = await pipe()
      .transform(sent, body(BatchUpsertRecipesDto))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestException);
    const message = JSON.stringify((error as BadRequestException).getResponse());
    expect(message).toContain('must not be all zeros');
    expect(message).toContain('got 100');
    expect(sent.items[1].embedding).toBe(bad);
    expect(sent.items[2].embedding).toBe(short);
  });

  it('keeps a long number array inside free-form data (mapped from the body itself)', async () => {
    const numbers = vector(5);
    const sent = { data: { numbers, nested: [{ more: vector(6) }] } };
    const dto = (await pipe().transform(sent, body(PutProfileDto))) as PutProfileDto;
    expect(dto.data).toEqual({ numbers, nested: [{ more: vector(6) }] });
    expect(dto.data.numbers).toBe(numbers);
  });

  it('maps a mixed or short array as before (item by item)', async () => {
    const mixed: unknown[] = vector(7);
    mixed[40] = 'x';
    const error = await pipe()
      .transform({ embedding: mixed }, body(SearchRecipesDto))
      .catch((e: unknown) => e);
    expect(JSON.stringify((error as BadRequestException).getResponse())).toContain(
      'element 40 is not a number',
    );
  });
});

describe(`${DenseArrayValidationPipe.name}: keys named like Object.prototype members`, () => {
  const pipe = new DenseArrayValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => new BadRequestException(errors.map((e) => e.property)),
  });
  const refused = async (value: unknown, metadata: ArgumentMetadata): Promise<unknown> => {
    const error = await pipe.transform(value, metadata).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestException);
    return ((error as BadRequestException).getResponse() as { message: unknown }).message;
  };
  const query: ArgumentMetadata = { type: 'query', metatype: ListRecipesQueryDto };

  it.each(['__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'])(
    'refuses %s in a query, which Nest or class-transformer would drop unseen',
    async (key) => {
      const value = Object.create(null) as Record<string, string>;
      value[key] = '1';
      value.limit = '5';
      expect(await refused(value, query)).toEqual([key]);
    },
  );

  it('names one inside a batch item by its path', async () => {
    const item = { title: 't', ingredients: ['a'], steps: ['b'], cuisine: 'x', totalMinutes: 1 };
    const message = await refused(
      { items: [item, { ...item, valueOf: 2 }] },
      { type: 'body', metatype: BatchUpsertRecipesDto },
    );
    expect(message).toEqual(['items.1.valueOf']);
  });

  it('keeps them in free-form data, where any key is allowed', async () => {
    const data = { toString: 1, valueOf: { hasOwnProperty: 2 } };
    const dto = (await pipe.transform(
      { data },
      { type: 'body', metatype: PutProfileDto },
    )) as PutProfileDto;
    expect(dto.data).toEqual(data);
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
