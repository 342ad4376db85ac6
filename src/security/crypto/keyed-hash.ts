import { createHmac } from 'node:crypto';

/** What a keyed hash is for; the same value hashed for two purposes gives unrelated digests. */
export const HashPurpose = {
  Email: 'email',
  ErasureLedger: 'erasure-ledger',
  AuditSubject: 'audit-subject',
} as const;

const MIN_KEY_BYTES = 32;

/**
 * HMAC-SHA256 over `purpose \0 value`: lets us look rows up by (or remember erasure of) a value
 * without storing it, and without a plain hash that a dictionary of emails would reverse.
 */
export function keyedHash(key: Buffer, purpose: string, value: string): Buffer {
  if (key.length < MIN_KEY_BYTES) {
    throw new RangeError(`hash key must be at least ${MIN_KEY_BYTES} bytes`);
  }
  // NOTE: a NUL inside the purpose would make `a\0b` + `c` collide with `a` + `b\0c`.
  if (purpose.length === 0 || purpose.includes('\0')) {
    throw new RangeError('hash purpose must be non-empty and contain no NUL');
  }
  return createHmac('sha256', key)
    .update(purpose, 'utf8')
    .update('\0', 'utf8')
    .update(value, 'utf8')
    .digest();
}

/** The form an email is hashed in, so `Ann@Example.com ` and `ann@example.com` match. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase().normalize('NFC');
}

/** The erasure ledger's (and the keystore tombstones') keyed hash of a user id. */
export function ledgerHash(key: Buffer, userId: string): Buffer {
  return keyedHash(key, HashPurpose.ErasureLedger, userId.toLowerCase());
}
