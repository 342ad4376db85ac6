import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { getMetadataStorage, isEmail, isISO8601, isUUID, ValidationTypes } from 'class-validator';
import type { ValidationMetadata } from 'class-validator/types/metadata/ValidationMetadata.js';
import fc from 'fast-check';
import { EMBEDDING_DIMENSIONS } from '../../src/recipes/recipes.constants.js';

/**
 * fast-check arbitraries derived from a DTO's class-validator metadata: valid values that
 * respect every constraint, and values that break one known field (by its JSON path, as
 * the validation pipe names it). A constraint this file does not know fails loudly, so a
 * new kind of validator on a DTO is noticed rather than fuzzed wrongly.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type DtoClass = new (...args: any[]) => object;

/** Where values travel: a JSON body keeps types, a query string makes every value a string. */
export type Channel = 'json' | 'query';

interface Rule {
  args: unknown[];
  each: boolean;
}

export interface FieldSchema {
  name: string;
  optional: boolean;
  rules: Map<string, Rule>;
  nested?: { dto: DtoClass; each: boolean };
}

/** Every constraint the generators understand; anything else throws. */
const KNOWN_RULES = new Set([
  'isOptional',
  'isString',
  'isLength',
  'maxLength',
  'minLength',
  'matches',
  'isInt',
  'isNumber',
  'min',
  'max',
  'isIn',
  'isUuid',
  'isIso8601',
  'isEmail',
  'isBoolean',
  'isObject',
  'isArray',
  'arrayMinSize',
  'arrayMaxSize',
  'isEmbedding',
  'isAfterFrom',
  'notWithFromAndTo',
]);

function ruleName(m: ValidationMetadata): string {
  if (m.type === ValidationTypes.NESTED_VALIDATION) {
    return 'nested';
  }
  if (m.type === ValidationTypes.CONDITIONAL_VALIDATION) {
    return m.name ?? 'conditional';
  }
  if (m.name) {
    return m.name;
  }
  const constraints = getMetadataStorage().getTargetValidatorConstraints(m.constraintCls);
  return constraints[0]?.name ?? m.type;
}

/** The nested DTO class-transformer makes of `name` (its `@Type`), found through the public API. */
function nestedType(dto: DtoClass, name: string, each: boolean): DtoClass {
  const probe = plainToInstance(dto, { [name]: each ? [{}] : {} }) as Record<string, unknown>;
  const made = each ? (probe[name] as unknown[])[0] : probe[name];
  const ctor = (made as object | undefined)?.constructor;
  if (!ctor || ctor === Object) {
    throw new Error(`${dto.name}.${name}: @ValidateNested without a @Type`);
  }
  return ctor as DtoClass;
}

const schemas = new Map<DtoClass, FieldSchema[]>();

/** The fields of a DTO and their constraints, as class-validator holds them. */
export function schemaOf(dto: DtoClass): FieldSchema[] {
  const cached = schemas.get(dto);
  if (cached) {
    return cached;
  }
  const metas = getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false);
  const byName = new Map<string, FieldSchema>();
  for (const m of metas) {
    const field = byName.get(m.propertyName) ?? {
      name: m.propertyName,
      optional: false,
      rules: new Map<string, Rule>(),
    };
    byName.set(m.propertyName, field);
    const name = ruleName(m);
    if (name === 'nested') {
      const each = m.each === true;
      field.nested = { dto: nestedType(dto, m.propertyName, each), each };
      continue;
    }
    if (!KNOWN_RULES.has(name)) {
      throw new Error(`${dto.name}.${m.propertyName}: no generator knows constraint ${name}`);
    }
    if (name === 'isOptional') {
      field.optional = true;
      continue;
    }
    field.rules.set(name, {
      args: (m.constraints as unknown[] | undefined) ?? [],
      each: m.each === true,
    });
  }
  const fields = [...byName.values()];
  schemas.set(dto, fields);
  return fields;
}

// ---------------------------------------------------------------------------------------
// strings

/** Characters validator.js does not count in a length (variation selectors). */
const UNCOUNTED = new Set([0xfe0e, 0xfe0f]);

/** A code point a valid string may hold: no NUL (PostgreSQL text refuses it), no surrogate half. */
const codePoint = fc
  .oneof(
    { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xffff }) },
    { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        0x01,
        0x09,
        0x0a,
        0x0d,
        0x1b,
        0x22,
        0x27,
        0x25,
        0x5c,
        0x7f,
        0xa0,
        0x200b,
        0x202e,
        0x301,
        0xfeff,
        0xfffd,
        0xffff,
        0x1f600,
        0x1f468,
        0x10ffff,
      ),
    },
  )
  .filter((c) => c !== 0 && !(c >= 0xd800 && c <= 0xdfff) && !UNCOUNTED.has(c))
  .map((c) => String.fromCodePoint(c));

/** `n` code points: a short random head padded with one repeated character (cheap at any n). */
function sized(n: number): fc.Arbitrary<string> {
  const head = Math.min(n, 8);
  return fc
    .tuple(
      fc.string({ unit: codePoint, minLength: head, maxLength: head }),
      fc.constantFrom('a', 'é', '語', '😀', ' '),
    )
    .map(([h, pad]) => h + pad.repeat(n - head));
}

/** A string of `min`..`max` code points (validator.js length), mostly short, sometimes at a bound. */
export function text(min: number, max: number): fc.Arbitrary<string> {
  const shortMax = Math.min(max, min + 24);
  const arbs: Array<fc.WeightedArbitrary<string>> = [
    { weight: 12, arbitrary: fc.string({ unit: codePoint, minLength: min, maxLength: shortMax }) },
  ];
  if (max > shortMax) {
    arbs.push(
      { weight: 1, arbitrary: sized(max) },
      { weight: 1, arbitrary: fc.integer({ min: Math.max(min, max - 3), max }).chain(sized) },
    );
  }
  if (min > 0) {
    arbs.push({ weight: 1, arbitrary: sized(min) });
  }
  return fc.oneof(...arbs);
}

/** A string that breaks a string field: a character PostgreSQL cannot store or a lone surrogate. */
const poisoned = fc
  .tuple(
    fc.string({ unit: codePoint, maxLength: 5 }),
    fc.constantFrom('\u0000', '\ud800', '\udfff', '\udc00x'),
  )
  .map(([s, bad]) => s + bad);

/** A string longer than `max` code points: just over, or huge. */
function tooLong(max: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: max + 1, max: max + 4 }).chain(sized) },
    { weight: 1, arbitrary: fc.constantFrom(max + 1, 200_000).map((n) => 'x'.repeat(n)) },
  );
}

// ---------------------------------------------------------------------------------------
// other scalars

/** Dates PostgreSQL and JavaScript both hold, with the ends of the four-digit years. */
const date = fc.oneof(
  { weight: 6, arbitrary: fc.date({ min: new Date('1970-01-01'), max: new Date('2100-01-01') }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      new Date('0001-01-01T00:00:00Z'),
      new Date('9999-12-31T23:59:59.999Z'),
      new Date('2000-02-29T12:00:00Z'),
    ),
  },
);

/** ISO 8601 in the shapes clients send: UTC with or without ms, an offset, a bare date. */
export const isoDate = fc
  .tuple(
    date.filter((d) => !Number.isNaN(d.getTime())),
    fc.integer({ min: 0, max: 3 }),
  )
  .map(([d, shape]) => {
    const iso = d.toISOString();
    switch (shape) {
      case 0:
        return iso;
      case 1:
        return iso.replace(/\.\d{3}Z$/, 'Z');
      case 2:
        return iso.replace(/Z$/, '+00:00');
      default:
        return iso.slice(0, 10);
    }
  });

/** A unit vector along one axis, scaled: 1,536 numbers without generating each. */
export const embedding = fc
  .tuple(
    fc.nat(EMBEDDING_DIMENSIONS - 1),
    fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((v) => v !== 0),
  )
  .map(([axis, value]) => {
    const v = new Array<number>(EMBEDDING_DIMENSIONS).fill(0);
    v[axis] = value;
    return v;
  });

const email = fc
  .emailAddress({ size: 'small' })
  .filter((e) => e.length <= 320 && isEmail(e) && !/\.\./.test(e));

/** `__proto__` keys are refused by the JSON parser itself (see the junk bodies instead). */
function withoutProtoKey(v: unknown): boolean {
  return !JSON.stringify(v).includes('"__proto__"');
}

/** Free-form JSON data (a profile): small, no NUL, finite numbers. */
const jsonObject = fc.dictionary(
  fc.string({ unit: codePoint, maxLength: 12 }),
  fc
    .jsonValue({ maxDepth: 3 })
    .map((v) => JSON.parse(JSON.stringify(v)) as unknown)
    .filter(withoutProtoKey),
  { maxKeys: 6 },
);

// ---------------------------------------------------------------------------------------
// valid values

function num(rule: Rule | undefined): number | undefined {
  return rule === undefined ? undefined : (rule.args[0] as number);
}

function lengthBounds(field: FieldSchema, each: boolean): { min: number; max: number } {
  const rule = (n: string): Rule | undefined => {
    const r = field.rules.get(n);
    return r && r.each === each ? r : undefined;
  };
  const len = rule('isLength');
  const min = Math.max((len?.args[0] as number | undefined) ?? 0, num(rule('minLength')) ?? 0);
  const max = Math.min(
    (len?.args[1] as number | undefined) ?? Infinity,
    num(rule('maxLength')) ?? Infinity,
  );
  // an unbounded string still gets a generator bound: long strings are the breakers' job
  return { min, max: Number.isFinite(max) ? max : 2_000 };
}

function scalarValid(field: FieldSchema, each: boolean): fc.Arbitrary<unknown> {
  const has = (n: string): boolean => field.rules.get(n)?.each === each;
  const r = (n: string): Rule | undefined => (has(n) ? field.rules.get(n) : undefined);
  if (has('isIn')) {
    return fc.constantFrom(...(r('isIn')!.args[0] as unknown[]));
  }
  if (has('isUuid')) {
    return fc.uuid({ version: 4 });
  }
  if (has('isIso8601')) {
    const strict = (r('isIso8601')!.args[0] as { strict?: boolean } | undefined)?.strict;
    return isoDate.filter((s) => isISO8601(s, { strict }));
  }
  if (has('isEmail')) {
    return email;
  }
  if (has('matches')) {
    const pattern = r('matches')!.args[0] as RegExp;
    const { min, max } = lengthBounds(field, each);
    return fc.stringMatching(pattern).filter((s) => s.length >= min && s.length <= max);
  }
  if (has('isInt')) {
    const min = num(r('min')) ?? -(2 ** 31);
    const max = num(r('max'));
    const top = max ?? Number.MAX_SAFE_INTEGER;
    const arbs: Array<fc.Arbitrary<number>> = [
      fc.integer({ min, max: Math.min(top, min + 1000) }),
      fc.constant(min),
      fc.constant(top),
    ];
    if (max === undefined) {
      // no upper bound declared: a client may send any integer JavaScript holds exactly
      arbs.push(fc.constantFrom(2 ** 31, 2 ** 53 - 1, 1e15));
    } else {
      arbs.push(fc.integer({ min, max }));
    }
    return fc.oneof(...arbs);
  }
  if (has('isNumber')) {
    const min = num(r('min')) ?? -1e9;
    const max = num(r('max')) ?? 1e9;
    return fc.oneof(
      fc.double({ min, max, noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom(min, max),
    );
  }
  if (has('isBoolean')) {
    return fc.boolean();
  }
  if (has('isObject')) {
    return jsonObject;
  }
  if (has('isString')) {
    const { min, max } = lengthBounds(field, each);
    return text(min, max);
  }
  throw new Error(
    `${field.name}: no valid generator for rules ${[...field.rules.keys()].join(',')}`,
  );
}

function fieldValid(field: FieldSchema): fc.Arbitrary<unknown> {
  if (field.rules.has('isEmbedding')) {
    return embedding;
  }
  const minSize = num(field.rules.get('arrayMinSize')) ?? 0;
  const maxSize = num(field.rules.get('arrayMaxSize')) ?? 20;
  if (field.nested) {
    const item = validObject(field.nested.dto);
    if (!field.nested.each) {
      return item;
    }
    // a few items, sometimes the most allowed (at a reduced cost: the items stay small)
    return fc.oneof(
      {
        weight: 30,
        arbitrary: fc.array(item, {
          minLength: minSize,
          maxLength: Math.min(maxSize, minSize + 3),
        }),
      },
      { weight: 1, arbitrary: fc.array(item, { minLength: maxSize, maxLength: maxSize }) },
    );
  }
  if (field.rules.has('isArray')) {
    const item = scalarValid(field, true);
    return fc.oneof(
      {
        weight: 8,
        arbitrary: fc.array(item, {
          minLength: minSize,
          maxLength: Math.min(maxSize, minSize + 4),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.array(fc.constantFrom('a', 'b', 'c'), {
          minLength: maxSize,
          maxLength: maxSize,
        }),
      },
    );
  }
  return scalarValid(field, false);
}

/** A valid object of a DTO: every required field, each optional one present or absent. */
export function validObject(dto: DtoClass): fc.Arbitrary<Record<string, unknown>> {
  const fields = schemaOf(dto);
  const required = Object.fromEntries(
    fields.filter((f) => !f.optional).map((f) => [f.name, fieldValid(f)]),
  );
  // NOTE: an optional embedding comes less often than other optional fields: its 1,536
  // numbers are the costliest part of a request to send, check, store and index
  const optional = Object.fromEntries(
    fields
      .filter((f) => f.optional)
      .map((f) => [
        f.name,
        f.rules.has('isEmbedding')
          ? fc.option(fieldValid(f), { freq: 5, nil: undefined })
          : fieldValid(f),
      ]),
  );
  return fc.tuple(fc.record(required), fc.record(optional, { requiredKeys: [] })).map(([a, b]) => {
    const out: Record<string, unknown> = { ...a, ...b };
    for (const key of Object.keys(out)) {
      if (out[key] === undefined) {
        delete out[key];
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------
// invalid values

/** A value that breaks one field, and the path the 400 must name. */
export interface Break {
  value: unknown;
  paths: string[];
}

const otherTypes = {
  string: fc.oneof(
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant({}),
    fc.constant([1]),
  ),
  number: fc.oneof(
    fc.constantFrom('1', '', 'NaN', 'Infinity', '1e3'),
    fc.boolean(),
    fc.constant({}),
    fc.constant([1]),
  ),
  boolean: fc.oneof(
    fc.constantFrom('true', 'false', 1, 0, 'yes'),
    fc.constant({}),
    fc.constant([]),
  ),
  array: fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant({ 0: 'a' }), fc.boolean()),
  object: fc.oneof(
    fc.string({ maxLength: 4 }),
    fc.integer(),
    fc.constant([{ a: 1 }]),
    fc.boolean(),
  ),
};

/** Strings a query sends for an integer that Number() does not make a valid one. */
function badIntegerText(min: number | undefined, max: number | undefined): fc.Arbitrary<string> {
  const arbs: Array<fc.Arbitrary<string>> = [
    fc.constantFrom('abc', 'NaN', 'Infinity', '-Infinity', '1.5', '1,5', '--1', '1_000', '0x', '½'),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .filter((d) => !Number.isInteger(d))
      .map(String),
  ];
  if (min !== undefined) {
    arbs.push(fc.integer({ min: -(2 ** 40), max: min - 1 }).map(String));
  }
  if (max !== undefined) {
    arbs.push(fc.integer({ min: max + 1, max: 2 ** 40 }).map(String), fc.constant('1e400'));
  }
  return fc.oneof(...arbs);
}

function scalarBreaks(
  field: FieldSchema,
  each: boolean,
  channel: Channel,
): Array<fc.Arbitrary<unknown>> {
  const has = (n: string): boolean => field.rules.get(n)?.each === each;
  const r = (n: string): Rule | undefined => (has(n) ? field.rules.get(n) : undefined);
  const out: Array<fc.Arbitrary<unknown>> = [];
  const json = channel === 'json';
  if (has('isIn')) {
    const allowed = r('isIn')!.args[0] as unknown[];
    out.push(fc.string({ maxLength: 12 }).filter((s) => !allowed.includes(s)));
    out.push(fc.constantFrom(...allowed.map((a) => String(a).toUpperCase() + ' ')));
    if (json) {
      out.push(otherTypes.string);
    }
    return out;
  }
  if (has('isInt') || has('isNumber')) {
    const min = num(r('min'));
    const max = num(r('max'));
    if (json) {
      out.push(otherTypes.number);
      if (has('isInt')) {
        out.push(
          fc
            .double({ noNaN: true, noDefaultInfinity: true })
            .filter(
              (d) =>
                !Number.isInteger(d) &&
                (min === undefined || d >= min) &&
                (max === undefined || d <= max),
            ),
        );
      }
      if (min !== undefined) {
        out.push(fc.constantFrom(min - 1, min - 2 ** 31, Number.MIN_SAFE_INTEGER, -1e300));
      }
      if (max !== undefined) {
        out.push(fc.constantFrom(max + 1, max + 2 ** 31, Number.MAX_SAFE_INTEGER, 1e300));
      }
    } else {
      out.push(
        badIntegerText(min, max).filter((s) => {
          const n = Number(s);
          const ok = has('isInt') ? Number.isInteger(n) : Number.isFinite(n);
          return !(ok && (min === undefined || n >= min) && (max === undefined || n <= max));
        }),
      );
    }
    return out;
  }
  if (has('isBoolean')) {
    out.push(otherTypes.boolean);
    return out;
  }
  if (has('isObject')) {
    out.push(otherTypes.object, fc.constant(null));
    return out;
  }
  if (
    json &&
    (has('isString') || has('matches') || has('isUuid') || has('isIso8601') || has('isEmail'))
  ) {
    out.push(otherTypes.string);
    if (!field.optional) {
      out.push(fc.constant(null));
    }
  }
  if (has('isUuid')) {
    out.push(
      fc.string({ maxLength: 40 }).filter((s) => !isUUID(s)),
      fc.uuid().map((u) => `${u}0`),
    );
  }
  if (has('isIso8601')) {
    const strict = (r('isIso8601')!.args[0] as { strict?: boolean } | undefined)?.strict;
    out.push(
      fc
        .oneof(
          fc.string({ maxLength: 30 }),
          fc.constantFrom(
            '2024-13-01',
            '2024-02-30T00:00:00Z',
            'yesterday',
            '2024-01-01T25:00:00Z',
            '1e9',
          ),
        )
        .filter((s) => !isISO8601(s, { strict })),
    );
  }
  if (has('isEmail')) {
    out.push(fc.string({ maxLength: 30 }).filter((s) => !isEmail(s)));
  }
  if (has('matches')) {
    const pattern = r('matches')!.args[0] as RegExp;
    out.push(fc.string({ maxLength: 30 }).filter((s) => !pattern.test(s)));
  }
  if (has('isString') || has('matches') || has('isIso8601') || has('isEmail') || has('isUuid')) {
    const { min, max } = lengthBounds(field, each);
    if (field.rules.get('isLength')?.each === each || field.rules.get('maxLength')?.each === each) {
      out.push(tooLong(max));
    }
    if (min > 0) {
      out.push(fc.constant(''));
    }
    // a query string cannot carry a lone surrogate (percent-encoding makes it U+FFFD)
    out.push(json ? poisoned : poisoned.map((s) => s.replace(/[\ud800-\udfff]/g, '\u0000')));
  }
  if (out.length === 0) {
    throw new Error(`${field.name}: no breaker for rules ${[...field.rules.keys()].join(',')}`);
  }
  return out;
}

/** Values that break `field` itself (the 400 names each path, or a path below it). */
export function fieldBreaks(
  field: FieldSchema,
  channel: Channel,
  path = field.name,
): fc.Arbitrary<Break> {
  const at = (arb: fc.Arbitrary<unknown>, p = path): fc.Arbitrary<Break> =>
    arb.map((value) => ({ value, paths: [p] }));
  if (channel === 'query') {
    // a repeated query key makes an array, which no scalar field takes
    const repeated = at(
      fc.array(fc.constantFrom('1', 'a', '2024-01-01'), { minLength: 2, maxLength: 3 }),
    );
    return fc.oneof(repeated, ...scalarBreaks(field, false, channel).map((a) => at(a)));
  }
  if (field.rules.has('isEmbedding')) {
    return at(
      fc.oneof(
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { maxLength: 8 }),
        fc.constant(new Array<number>(EMBEDDING_DIMENSIONS).fill(0)),
        fc.constant(new Array<number>(EMBEDDING_DIMENSIONS + 1).fill(0.5)),
        embedding.map((v) => [...v.slice(1), 'x']),
        otherTypes.array,
      ),
    );
  }
  const minSize = num(field.rules.get('arrayMinSize'));
  const maxSize = num(field.rules.get('arrayMaxSize'));
  const sizeBreaks: Array<fc.Arbitrary<Break>> = [];
  if (field.rules.has('isArray') || field.nested?.each) {
    sizeBreaks.push(at(otherTypes.array));
    if (minSize !== undefined && minSize > 0) {
      sizeBreaks.push(at(fc.constant([])));
    }
  }
  if (field.nested) {
    const nested = field.nested;
    if (!nested.each) {
      return fc.oneof(
        at(otherTypes.object),
        objectBreaks(nested.dto, channel).map((b) => ({
          value: b.value,
          paths: b.paths.map((p) => `${path}.${p}`),
        })),
      );
    }
    const item = validObject(nested.dto);
    const inItem = fc
      .tuple(
        fc.array(item, { maxLength: 3 }),
        objectBreaks(nested.dto, channel),
        fc.array(item, { maxLength: 2 }),
      )
      .map(([before, bad, after]) => ({
        value: [...before, bad.value, ...after],
        paths: bad.paths.map((p) => `${path}.${before.length}.${p}`),
      }));
    const itemNotObject = fc
      .tuple(fc.array(item, { maxLength: 2 }), fc.constantFrom(1, 'x', true, [] as unknown[]))
      .map(([before, bad]) => ({ value: [...before, bad], paths: [path] }));
    const arbs: Array<fc.WeightedArbitrary<Break>> = [
      ...sizeBreaks.map((arbitrary) => ({ weight: 1, arbitrary })),
      { weight: 8, arbitrary: inItem },
      { weight: 2, arbitrary: itemNotObject },
    ];
    if (maxSize !== undefined) {
      const over = fc
        .constant(maxSize + 1)
        .chain((n) => fc.array(item, { minLength: n, maxLength: n }));
      arbs.push({ weight: 1, arbitrary: at(over) });
    }
    return fc.oneof(...arbs);
  }
  if (field.rules.has('isArray')) {
    const good = scalarValid(field, true);
    const badItem = fc
      .tuple(fc.array(good, { maxLength: 3 }), fc.oneof(...scalarBreaks(field, true, channel)))
      .map(([before, bad]) => [...before, bad]);
    const arbs = [...sizeBreaks, at(badItem)];
    if (maxSize !== undefined) {
      arbs.push(at(fc.constant(new Array<string>(maxSize + 1).fill('a'))));
    }
    return fc.oneof(...arbs);
  }
  return fc.oneof(...scalarBreaks(field, false, channel).map((a) => at(a)));
}

/**
 * Unknown keys named like Object.prototype members: Nest deletes some before validation
 * and class-transformer skips the others, so the validation pipe looks for them itself.
 * Not `__proto__`: set on a generated object it would replace the prototype, not add a key
 * (the JSON parser refuses it in a body; the junk queries send it).
 */
const RESERVED_KEYS = [
  'constructor',
  'prototype',
  ...Object.getOwnPropertyNames(Object.prototype).filter((k) => k !== '__proto__'),
];

/** Fields whose rules look at other fields: they may be named when those are broken. */
export function crossFieldNames(dto: DtoClass): Set<string> {
  return new Set(
    schemaOf(dto)
      .filter((f) => f.rules.has('isAfterFrom') || f.rules.has('notWithFromAndTo'))
      .map((f) => f.name),
  );
}

/**
 * A value of the DTO with some fields broken (the rest valid) or unknown keys added, and
 * the paths the 400 must name.
 */
export function objectBreaks(
  dto: DtoClass,
  channel: Channel,
  prepare: (v: Record<string, unknown>) => Record<string, unknown> = (v) => v,
): fc.Arbitrary<{ value: Record<string, unknown>; paths: string[] }> {
  const fields = schemaOf(dto);
  const names = new Set(fields.map((f) => f.name));
  const unknownKey = fc
    .oneof(
      fc.string({ minLength: 1, maxLength: 10 }),
      fc.constantFrom('id', 'version', 'createdAt', 'updatedAt', 'isAdmin'),
      fc.constantFrom(...RESERVED_KEYS),
    )
    .filter((k) => !names.has(k) && k !== '__proto__' && !k.includes('\u0000'));
  const breaks = fields.map((f) =>
    fc.record({ field: fc.constant(f.name), brk: fieldBreaks(f, channel) }),
  );
  const missing = fields.filter((f) => !f.optional).map((f) => fc.constant(f.name));
  return fc
    .tuple(
      validObject(dto).map(prepare),
      fc.uniqueArray(fc.oneof(...breaks), { minLength: 1, maxLength: 3, selector: (b) => b.field }),
      missing.length > 0 ? fc.option(fc.oneof(...missing), { freq: 5 }) : fc.constant(null),
      fc.option(
        channel === 'query'
          ? fc.tuple(unknownKey, fc.string({ maxLength: 5 }))
          : fc.oneof(
              {
                weight: 9,
                arbitrary: fc.tuple(
                  unknownKey,
                  fc.jsonValue({ maxDepth: 1 }).filter(withoutProtoKey),
                ),
              },
              // prototype poisoning: the parser takes it out, the 400 still names it
              {
                weight: 1,
                arbitrary: fc.tuple(
                  fc.constant('constructor'),
                  fc.constant<unknown>({ prototype: { polluted: 1 } }),
                ),
              },
            ),
        { freq: 4 },
      ),
    )
    .map(([base, broken, drop, extra]) => {
      const value: Record<string, unknown> = { ...base };
      const paths: string[] = [];
      for (const { field, brk } of broken) {
        value[field] = brk.value;
        paths.push(...brk.paths);
      }
      if (drop !== null && !broken.some((b) => b.field === drop)) {
        delete value[drop];
        paths.push(drop);
      }
      if (extra !== null) {
        value[extra[0]] = extra[1];
        paths.push(extra[0]);
      }
      return { value, paths };
    });
}
