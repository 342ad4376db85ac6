import { registerDecorator, ValidationOptions } from 'class-validator';
import { API_SCOPES } from '../security/scopes.js';

function define(
  name: string,
  message: string,
  test: (value: unknown) => boolean,
  options?: ValidationOptions,
): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name,
      target: target.constructor,
      propertyName: propertyName.toString(),
      options: { message, ...options },
      validator: { validate: (value: unknown) => test(value) },
    });
}

export function parseNodeList(value: string): Array<{ host: string; port: number }> {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((entry) => {
      const m = /^([A-Za-z0-9_.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(entry);
      if (!m) {
        throw new Error(`bad node "${entry}"`);
      }
      const port = Number(m[2]);
      if (port < 1 || port > 65535) {
        throw new Error(`bad port in "${entry}"`);
      }
      return { host: m[1].replace(/^\[|\]$/g, ''), port };
    });
}

export const IsNodeList = (o?: ValidationOptions): PropertyDecorator =>
  define(
    'isNodeList',
    '$property must be a comma-separated list of host:port (at least one)',
    (v) => {
      if (typeof v !== 'string') {
        return false;
      }
      try {
        return parseNodeList(v).length > 0;
      } catch {
        return false;
      }
    },
    o,
  );

export const IsRedisUrl = (o?: ValidationOptions): PropertyDecorator =>
  define(
    'isRedisUrl',
    '$property must be a redis:// or rediss:// URL',
    (v) => {
      if (typeof v !== 'string') {
        return false;
      }
      try {
        const u = new URL(v);
        return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname.length > 0;
      } catch {
        return false;
      }
    },
    o,
  );

export interface ApiKeyConfig {
  id: string;
  /** SHA-256 of the secret, hex. The secret itself is never configured. */
  hash: string;
  scopes: string[];
}

export function parseApiKeys(value: string): ApiKeyConfig[] {
  const parsed: unknown = JSON.parse(value);
  if (!Array.isArray(parsed)) {
    throw new Error('not an array');
  }
  const ids = new Set<string>();
  return parsed.map((k: unknown) => {
    const key = k as Partial<ApiKeyConfig>;
    if (
      typeof key !== 'object' ||
      key === null ||
      typeof key.id !== 'string' ||
      !/^[A-Za-z0-9_.-]{1,64}$/.test(key.id) ||
      typeof key.hash !== 'string' ||
      !/^[0-9a-f]{64}$/.test(key.hash) ||
      !Array.isArray(key.scopes) ||
      !key.scopes.every((s) => (API_SCOPES as readonly string[]).includes(s)) ||
      ids.has(key.id)
    ) {
      throw new Error('bad key');
    }
    ids.add(key.id);
    return { id: key.id, hash: key.hash, scopes: [...key.scopes] };
  });
}

export const IsApiKeyList = (o?: ValidationOptions): PropertyDecorator =>
  define(
    'isApiKeyList',
    '$property must be a JSON array of {"id","hash" (sha256 hex of the secret),"scopes":[known scopes]} with unique ids',
    (v) => {
      if (typeof v !== 'string') {
        return false;
      }
      try {
        parseApiKeys(v);
        return true;
      } catch {
        return false;
      }
    },
    o,
  );
