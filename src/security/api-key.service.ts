import { Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
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
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}
