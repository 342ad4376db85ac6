import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptionError } from './kms.js';

/**
 * Sealed format: `0x01 | iv(12) | tag(16) | ciphertext`, AES-256-GCM. The leading byte lets a
 * later format (another cipher, a key id) coexist with rows already written.
 */
const FORMAT_V1 = 0x01;
const ALGORITHM = 'aes-256-gcm';
export const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;

/** AAD of whole-file exports: they are not bound to a row, only to their purpose. */
const EXPORT_AAD = 'export';

function assertKey(key: Buffer): void {
  // NOTE: a wrong-sized key is a wiring bug, not a decryption failure; keep it loud and distinct.
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`encryption key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
}

/**
 * Encrypts with a fresh random IV. `aad` binds the ciphertext to where it lives (e.g.
 * `users.email:<id>`) so a sealed value copied to another row or column does not open.
 */
export function sealField(key: Buffer, plaintext: Buffer | string, aad: string): Buffer {
  assertKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT_V1), iv, cipher.getAuthTag(), ciphertext]);
}

/** Throws `DecryptionError` for any malformed, tampered, wrong-key or wrong-AAD input. */
export function openField(key: Buffer, sealed: Buffer, aad: string): Buffer {
  assertKey(key);
  if (sealed.length < HEADER_BYTES) {
    throw new DecryptionError('sealed value is too short');
  }
  if (sealed[0] !== FORMAT_V1) {
    throw new DecryptionError('unknown sealed format');
  }
  const iv = sealed.subarray(1, 1 + IV_BYTES);
  const tag = sealed.subarray(1 + IV_BYTES, HEADER_BYTES);
  const ciphertext = sealed.subarray(HEADER_BYTES);
  const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // NOTE: node's message says nothing useful and must not travel; the cause is always the same.
    throw new DecryptionError();
  }
}

export function sealJson(key: Buffer, value: unknown, aad: string): Buffer {
  const json = JSON.stringify(value) as string | undefined;
  if (json === undefined) {
    throw new TypeError('value is not JSON-serialisable');
  }
  return sealField(key, json, aad);
}

/** The value is trusted as `T` because the tag proves we sealed it; no shape check is done. */
export function openJson<T>(key: Buffer, sealed: Buffer, aad: string): T {
  const json = openField(key, sealed, aad).toString('utf8');
  try {
    return JSON.parse(json) as T;
  } catch {
    // NOTE: the parser's message quotes the plaintext.
    throw new DecryptionError('sealed value is not JSON');
  }
}

/** Seals a whole export file; same format as fields. */
export function sealBlob(key: Buffer, data: Buffer): Buffer {
  return sealField(key, data, EXPORT_AAD);
}

export function openBlob(key: Buffer, sealed: Buffer): Buffer {
  return openField(key, sealed, EXPORT_AAD);
}
