import { Inject, Injectable } from '@nestjs/common';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

export interface AuthenticatedKey {
  id: string;
  scopes: ReadonlySet<string>;
}

/** Checks presented secrets against configured SHA-256 hashes, in constant time. */
@Injectable()
export class ApiKeyService {
  private readonly keys: Array<{ id: string; hash: Buffer; scopes: ReadonlySet<string> }>;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.keys = config.security.apiKeys.map((k) => ({
      id: k.id,
      hash: Buffer.from(k.hash, 'hex'),
      scopes: new Set(k.scopes),
    }));
  }

  authenticate(secret: string): AuthenticatedKey | null {
    const presented = createHash('sha256').update(secret, 'utf8').digest();
    let found: AuthenticatedKey | null = null;
    // NOTE: compare against every key, without an early exit, so timing does not
    // reveal which (or whether a) key matched.
    for (const key of this.keys) {
      if (timingSafeEqual(presented, key.hash) && found === null) {
        found = { id: key.id, scopes: key.scopes };
      }
    }
    return found;
  }

  /**
   * A session token for the dashboard's cookie: `<key id>.<expiry ms>.<HMAC>`, the HMAC
   * keyed with the key's stored hash. It holds no secret, any instance can check it
   * (nothing is stored), and removing or rotating the key ends its sessions.
   */
  issueSession(key: AuthenticatedKey, ttlMs: number, now = Date.now()): string {
    const stored = this.keys.find((k) => k.id === key.id);
    if (!stored) {
      throw new Error(`unknown API key ${key.id}`);
    }
    const expires = now + ttlMs;
    return `${key.id}.${expires}.${sessionMac(stored.hash, key.id, expires)}`;
  }

  /** The key a session token was issued for, or null (malformed, forged, expired, key gone). */
  verifySession(token: string, now = Date.now()): AuthenticatedKey | null {
    const m = /^([A-Za-z0-9_.-]{1,64})\.(\d{1,15})\.([0-9a-f]{64})$/.exec(token);
    if (!m) {
      return null;
    }
    const [, id, expiresText, mac] = m;
    const expires = Number(expiresText);
    const stored = this.keys.find((k) => k.id === id);
    if (!stored || expires <= now) {
      return null;
    }
    const expected = Buffer.from(sessionMac(stored.hash, id, expires), 'hex');
    return timingSafeEqual(expected, Buffer.from(mac, 'hex'))
      ? { id: stored.id, scopes: stored.scopes }
      : null;
  }
}

function sessionMac(keyHash: Buffer, id: string, expires: number): string {
  return createHmac('sha256', keyHash).update(`dashboard-session:${id}:${expires}`).digest('hex');
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}
