import { ArgumentMetadata, ValidationPipe } from '@nestjs/common';
import { getMetadataStorage, ValidationError, ValidatorOptions } from 'class-validator';
import { prototypeKeyMessage, refusedPrototypeKeys } from './prototype-keys.js';
import { RequestContextStore } from './request-context.js';

/** Built-in types whose contents are not plain data (as Nest's own walk skips them). */
const BUILT_IN_TYPES = [Date, RegExp, Error, Map, Set, WeakMap, WeakSet];

/** Above this length a density check by index would cost more than Nest's key walk. */
const DENSE_CHECK_MAX_LENGTH = 1_000_000;

/** NUL (PostgreSQL text and jsonb refuse it) or half of a surrogate pair (not Unicode text). */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

/**
 * Every string (and object key) of a request that the database cannot store as sent, by
 * path: PostgreSQL refuses a NUL (a 500 after validation passed), and a lone surrogate
 * would be stored as U+FFFD (not what was sent). A 400 names each such field. The strings
 * found are repaired in place (U+FFFD): the request is refused anyway, and validators
 * that do not expect them (isEmail's encodeURI throws on a lone surrogate) still run.
 */
export function unstorableTextErrors(value: unknown): ValidationError[] {
  const found: ValidationError[] = [];
  const stack: Array<[object, string]> = [];
  const child = (at: string, key: string | number): string => (at ? `${at}.${key}` : String(key));
  // one item: a string is checked (and repaired), an object or array walked later
  const visit = (container: object, key: string | number, item: unknown, at: string): void => {
    if (typeof item === 'string') {
      if (UNSTORABLE.test(item)) {
        found.push(unstorable(child(at, key), 'must not contain NUL or unpaired surrogates'));
        (container as Record<string | number, unknown>)[key] = item.replace(
          UNSTORABLE_ALL,
          '\ufffd',
        );
      }
    } else if (item !== null && typeof item === 'object' && !ArrayBuffer.isView(item)) {
      stack.push([item, child(at, key)]);
    }
  };
  if (value !== null && typeof value === 'object') {
    stack.push([value, '']);
  }
  while (stack.length > 0) {
    const [current, at] = stack.pop()!;
    if (Array.isArray(current)) {
      // by index, without allocating: an embedding is 1,536 numbers, a batch 100 of them
      for (let i = 0; i < current.length; i++) {
        visit(current, i, current[i], at);
      }
      continue;
    }
    for (const key of Object.keys(current)) {
      if (UNSTORABLE.test(key)) {
        found.push(unstorable(at || key, 'keys must not contain NUL or unpaired surrogates'));
      } else {
        visit(current, key, (current as Record<string, unknown>)[key], at);
      }
    }
  }
  return found;
}

function unstorable(path: string, what: string): ValidationError {
  return { property: path, constraints: { unstorableText: `${path} ${what}` }, children: [] };
}

/** A key the body parser took out (common/prototype-keys.ts), as a bad field. */
function prototypeKeyError(path: string): ValidationError {
  return { property: path, constraints: { prototypeKey: prototypeKeyMessage(path) }, children: [] };
}

/** A place in a request: keys and array indexes. */
type Path = Array<string | number>;

/**
 * Keys that never reach forbidNonWhitelisted: Nest deletes the first three, class-transformer
 * skips the rest (an instance inherits them as functions).
 */
const RESERVED_KEYS = new Set([
  '__proto__',
  'constructor',
  'prototype',
  ...Object.getOwnPropertyNames(Object.prototype),
]);

/** The properties class-validator knows of a DTO class. */
function declaredProperties(type: object): Set<string> {
  return new Set(
    getMetadataStorage()
      .getTargetValidationMetadatas(type as new () => object, '', true, false)
      .map((m) => m.propertyName),
  );
}

/**
 * The reserved keys of `paths` that sit in a DTO (an instance of a validated class, not
 * free-form data such as a profile's `data`) without being one of its properties: the
 * error forbidNonWhitelisted would have given them, by their path.
 */
function undeclaredReservedKeys(mapped: object, paths: Path[]): ValidationError[] {
  const errors: ValidationError[] = [];
  for (const path of paths) {
    let at: unknown = mapped;
    for (let i = 0; i < path.length - 1 && at !== null && typeof at === 'object'; i++) {
      at = (at as Record<string | number, unknown>)[path[i]];
    }
    if (at === null || typeof at !== 'object' || Array.isArray(at)) {
      continue;
    }
    const type = Object.getPrototypeOf(at) as { constructor?: unknown } | null;
    const ctor = at === mapped ? (at as { constructor: unknown }).constructor : type?.constructor;
    if (typeof ctor !== 'function' || ctor === Object) {
      continue;
    }
    const key = String(path[path.length - 1]);
    if (!declaredProperties(ctor).has(key)) {
      const field = path.join('.');
      errors.push({
        property: field,
        constraints: { whitelistValidation: `property ${key} should not exist` },
        children: [],
      });
    }
  }
  return errors;
}

/** What `stripProtoKeys` noted of the value `validate` gets next. */
interface Pending {
  aside: SetAside[];
  reserved: Path[];
  /** Prototype-poisoning keys the body parser removed, by path. */
  refused: string[];
}

/** From this length on, an array of numbers skips class-transformer's copy. */
const SET_ASIDE_MIN_LENGTH = 32;

/** A long array of numbers taken out of a request's body, and where it was. */
interface SetAside {
  path: Path;
  container: Record<string | number, unknown>;
  key: string | number;
  array: number[];
}

/** Whether `value` is an array of SET_ASIDE_MIN_LENGTH or more numbers and nothing else. */
function isLongNumberArray(value: unknown): value is number[] {
  if (!Array.isArray(value) || value.length < SET_ASIDE_MIN_LENGTH) {
    return false;
  }
  for (let i = 0; i < value.length; i++) {
    if (typeof value[i] !== 'number') {
      return false;
    }
  }
  return true;
}

/**
 * One walk over a request's value: swaps every long array of numbers (at any depth) for a
 * one-item stand-in and says where each was (the stand-in keeps the property an array, so
 * class-transformer maps it as it maps the real one), and where a key of RESERVED_KEYS is.
 */
function scanValue(value: unknown): { aside: SetAside[]; reserved: Path[] } {
  const aside: SetAside[] = [];
  const reserved: Path[] = [];
  if (value === null || typeof value !== 'object') {
    return { aside, reserved };
  }
  const stack: Array<[object, Path]> = [[value, []]];
  const visit = (container: object, key: string | number, path: Path): void => {
    if (typeof key === 'string' && RESERVED_KEYS.has(key)) {
      reserved.push([...path, key]);
    }
    const item = (container as Record<string | number, unknown>)[key];
    if (isLongNumberArray(item)) {
      (container as Record<string | number, unknown>)[key] = [0];
      aside.push({
        path: [...path, key],
        container: container as Record<string | number, unknown>,
        key,
        array: item,
      });
    } else if (item !== null && typeof item === 'object' && !ArrayBuffer.isView(item)) {
      stack.push([item, [...path, key]]);
    }
  };
  while (stack.length > 0) {
    const [current, path] = stack.pop()!;
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        visit(current, i, path);
      }
    } else {
      for (const key of Object.keys(current)) {
        visit(current, key, path);
      }
    }
  }
  return { aside, reserved };
}

/**
 * Puts the arrays set aside back: into the body, and into the mapped object at the same
 * path wherever class-transformer made an array of the stand-in (a property it dropped,
 * such as `__proto__`, stays dropped). For numbers its copy is the numbers themselves: no
 * DTO maps number items to another type (`@Type(() => String)` would).
 */
function putBack(mapped: object, aside: SetAside[]): void {
  for (const item of aside) {
    item.container[item.key] = item.array;
    let at: unknown = mapped;
    for (let i = 0; i < item.path.length - 1 && at !== null && typeof at === 'object'; i++) {
      at = (at as Record<string | number, unknown>)[item.path[i]];
    }
    const key = item.path[item.path.length - 1];
    if (
      at !== null &&
      typeof at === 'object' &&
      Array.isArray((at as Record<string | number, unknown>)[key])
    ) {
      (at as Record<string | number, unknown>)[key] = item.array;
    }
  }
}

/** Whether `array` has an item at every index below its length (no gap). */
function isDense(array: readonly unknown[]): boolean {
  for (let i = 0; i < array.length; i++) {
    if (!(i in array)) {
      return false;
    }
  }
  return true;
}

/**
 * Nest's ValidationPipe with a cheaper walk for dense arrays. Before validating, Nest
 * closes the gaps of sparse arrays (a urlencoded `tags[1000]` makes one) by listing
 * every array's keys as strings and parsing each back to an index: for a 1,536-number
 * embedding that is 1,536 strings per search, 153,600 per batch of 100 recipes. Here an
 * array whose every index holds an item (every array JSON.parse makes) is checked by
 * index and left alone; only a sparse one, or one too long to check, goes through Nest's
 * own `closeArrayGaps`, so the result is the same. Validation also names every string the
 * database could not store as sent (`unstorableTextErrors`).
 */
export class DenseArrayValidationPipe extends ValidationPipe {
  /** What `stripProtoKeys` found in the value being mapped now, for `validate`. */
  private pending: Pending = { aside: [], reserved: [], refused: [] };
  private readonly setAside = new WeakMap<object, SetAside[]>();

  /** A DTO body is a JSON object: an array or a bare value is refused before it is mapped. */
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (
      metadata.type === 'body' &&
      value !== null &&
      value !== undefined &&
      (typeof value !== 'object' || Array.isArray(value)) &&
      this.toValidate(metadata)
    ) {
      throw this.exceptionFactory([
        { property: 'body', constraints: { isObject: 'body must be a JSON object' }, children: [] },
      ]);
    }
    if (metadata.type === 'body' && !this.toValidate(metadata)) {
      // a body no DTO describes still answers for the keys its parser took out
      const refused = refusedPrototypeKeys(value);
      if (refused.length > 0) {
        throw this.exceptionFactory(refused.map(prototypeKeyError));
      }
    }
    try {
      return await RequestContextStore.timed('validate', () => super.transform(value, metadata));
    } finally {
      // the request's body holds its arrays again whatever happened in between
      if (value !== null && typeof value === 'object') {
        for (const item of this.setAside.get(value) ?? []) {
          item.container[item.key] = item.array;
        }
        this.setAside.delete(value);
      }
    }
  }

  /**
   * Nest's walk, after setting aside every long array of numbers (an embedding is 1,536 of
   * them, a batch of 100 recipes 153,600): class-transformer copies an array item by item,
   * through its whole chain of type checks per number (about 115 µs per embedding, 15 ms
   * per batch), to produce the same numbers. Each such array is swapped for a one-item
   * stand-in until `validate` gets the mapped object, then put back, into the mapped object
   * and the body alike: the validators see the very array that was sent. Nest calls this
   * right before class-transformer, and `validate` right after, with no await in between,
   * so `pending` is this value's list when `validate` reads it.
   */
  protected override stripProtoKeys(value: unknown): void {
    // Nest deletes `__proto__`, `constructor` and `prototype` here, and class-transformer
    // skips keys named like the other members of Object.prototype (`toString`, `valueOf`,
    // ...): both silently, so forbidNonWhitelisted never sees them. Noted before they go.
    this.pending = { ...scanValue(value), refused: refusedPrototypeKeys(value) };
    if (this.pending.aside.length > 0 && value !== null && typeof value === 'object') {
      this.setAside.set(value, this.pending.aside);
    }
    super.stripProtoKeys(value);
  }

  /** class-validator's errors, and every string the database could not store as sent. */
  protected override async validate(
    object: object,
    validatorOptions?: ValidatorOptions,
  ): Promise<ValidationError[]> {
    const { aside, reserved, refused } = this.pending;
    this.pending = { aside: [], reserved: [], refused: [] };
    putBack(object, aside);
    const unstorable = unstorableTextErrors(object);
    const undeclared = undeclaredReservedKeys(object, reserved);
    const errors = await super.validate(object, validatorOptions);
    return [...errors, ...unstorable, ...undeclared, ...refused.map(prototypeKeyError)];
  }

  protected override closeArrayGaps(value: unknown): void {
    const visited = new WeakSet<object>();
    const stack: unknown[] = [value];
    while (stack.length > 0) {
      const current = stack.pop();
      if (
        current === null ||
        typeof current !== 'object' ||
        ArrayBuffer.isView(current) ||
        visited.has(current)
      ) {
        continue;
      }
      visited.add(current);
      if (BUILT_IN_TYPES.some((type) => current instanceof type)) {
        continue;
      }
      if (Array.isArray(current)) {
        if (current.length > DENSE_CHECK_MAX_LENGTH || !isDense(current)) {
          // Nest's walk closes the gaps of this array and of everything inside it
          super.closeArrayGaps(current);
          continue;
        }
        for (const item of current) {
          if (item !== null && typeof item === 'object') {
            stack.push(item);
          }
        }
        continue;
      }
      for (const key of Object.keys(current)) {
        const item = (current as Record<string, unknown>)[key];
        if (item !== null && typeof item === 'object') {
          stack.push(item);
        }
      }
    }
  }
}
