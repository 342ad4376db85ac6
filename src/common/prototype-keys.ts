/**
 * Keys of a JSON body that could poison object prototypes: `__proto__` anywhere, and
 * `constructor` holding a `prototype` (what Fastify's secure-json-parse refuses). The body
 * parser takes them out of the parsed value and notes their paths here, keyed by the body
 * itself; the validation pipe answers them as bad fields beside every other bad field, so a
 * caller learns all that is wrong in one 400 instead of "Body is not valid JSON".
 */
const refused = new WeakMap<object, string[]>();

/** The poisoning keys removed from `body` by `removePrototypeKeys`, by JSON path. */
export function refusedPrototypeKeys(body: unknown): string[] {
  return body !== null && typeof body === 'object' ? (refused.get(body) ?? []) : [];
}

/**
 * Deletes every poisoning key from a value JSON.parse produced (where `__proto__` is an own
 * data property, never the prototype) and returns their paths, also noted for
 * `refusedPrototypeKeys`. A value without such keys is left as it is.
 */
export function removePrototypeKeys(value: unknown): string[] {
  if (value === null || typeof value !== 'object') {
    return [];
  }
  const paths: string[] = [];
  const stack: Array<[object, string]> = [[value, '']];
  while (stack.length > 0) {
    const [node, prefix] = stack.pop()!;
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const path = prefix ? `${prefix}.${key}` : key;
      const item = record[key];
      const poisons =
        key === '__proto__' ||
        (key === 'constructor' &&
          item !== null &&
          typeof item === 'object' &&
          Object.prototype.hasOwnProperty.call(item, 'prototype'));
      if (poisons) {
        delete record[key];
        paths.push(path);
      } else if (item !== null && typeof item === 'object') {
        stack.push([item, path]);
      }
    }
  }
  if (paths.length > 0) {
    paths.sort();
    refused.set(value, paths);
  }
  return paths;
}

/** What a 400 says of a removed poisoning key. */
export function prototypeKeyMessage(path: string): string {
  return path.endsWith('__proto__')
    ? `${path} is refused: a key named __proto__ could poison object prototypes`
    : `${path} is refused: a constructor holding a prototype could poison object prototypes`;
}
