import { randomBytes } from 'node:crypto';
import { openBlob, openField, openJson, sealBlob, sealField, sealJson } from './envelope.js';
import { DecryptionError } from './kms.js';

const KEY = randomBytes(32);
const AAD = 'users.email:42';
const PLAINTEXT = 'ann@example.com';
const HEADER_BYTES = 1 + 12 + 16;

describe(sealField.name, () => {
  it('round-trips strings, buffers and the empty value', () => {
    expect(openField(KEY, sealField(KEY, PLAINTEXT, AAD), AAD).toString('utf8')).toBe(PLAINTEXT);
    const bytes = randomBytes(1000);
    expect(openField(KEY, sealField(KEY, bytes, AAD), AAD).equals(bytes)).toBe(true);
    expect(openField(KEY, sealField(KEY, '', AAD), AAD)).toHaveLength(0);
  });

  it('writes 0x01 | iv | tag | ciphertext', () => {
    const sealed = sealField(KEY, PLAINTEXT, AAD);
    expect(sealed[0]).toBe(0x01);
    expect(sealed).toHaveLength(HEADER_BYTES + Buffer.byteLength(PLAINTEXT));
  });

  it('uses a fresh IV: sealing the same plaintext twice gives different bytes', () => {
    const a = sealField(KEY, PLAINTEXT, AAD);
    const b = sealField(KEY, PLAINTEXT, AAD);
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(1, 13).equals(b.subarray(1, 13))).toBe(false);
  });

  it('rejects a flipped bit at every position of version, iv, tag and ciphertext', () => {
    const sealed = sealField(KEY, PLAINTEXT, AAD);
    for (let byte = 0; byte < sealed.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = Buffer.from(sealed);
        tampered[byte] ^= 1 << bit;
        expect(() => openField(KEY, tampered, AAD)).toThrow(DecryptionError);
      }
    }
  });

  it.each([
    ['the wrong AAD', (s: Buffer) => openField(KEY, s, 'users.email:43')],
    ['the wrong key', (s: Buffer) => openField(randomBytes(32), s, AAD)],
    ['a truncated value', (s: Buffer) => openField(KEY, s.subarray(0, HEADER_BYTES - 1), AAD)],
    ['a dropped ciphertext byte', (s: Buffer) => openField(KEY, s.subarray(0, s.length - 1), AAD)],
    [
      'an unknown version byte',
      (s: Buffer) => openField(KEY, Buffer.concat([Buffer.of(2), s.subarray(1)]), AAD),
    ],
    ['an empty buffer', () => openField(KEY, Buffer.alloc(0), AAD)],
  ])('throws DecryptionError for %s', (_, open) => {
    const sealed = sealField(KEY, PLAINTEXT, AAD);
    expect(() => open(sealed)).toThrow(DecryptionError);
  });

  it('keeps node error text and plaintext out of the DecryptionError message', () => {
    const sealed = sealField(KEY, PLAINTEXT, AAD);
    let caught: unknown;
    try {
      openField(KEY, sealed, 'other');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DecryptionError);
    expect((caught as Error).message).toBe('decryption failed');
    expect((caught as Error).cause).toBeUndefined();
  });

  it('refuses a key that is not 32 bytes as a programming error', () => {
    expect(() => sealField(randomBytes(16), PLAINTEXT, AAD)).toThrow(RangeError);
  });
});

describe(sealJson.name, () => {
  it('round-trips a JSON value under its AAD only', () => {
    const value = { name: 'Ann', allergies: ['nuts'], age: 41 };
    const sealed = sealJson(KEY, value, AAD);
    expect(openJson<typeof value>(KEY, sealed, AAD)).toEqual(value);
    expect(() => openJson(KEY, sealed, 'users.profile:42')).toThrow(DecryptionError);
  });

  it('reports a non-JSON plaintext as a DecryptionError without quoting it', () => {
    const sealed = sealField(KEY, 'not json {secret}', AAD);
    expect(() => openJson(KEY, sealed, AAD)).toThrow(
      new DecryptionError('sealed value is not JSON'),
    );
  });
});

describe(sealBlob.name, () => {
  it('round-trips a file and does not open as a field of another AAD', () => {
    const data = randomBytes(64 * 1024);
    const sealed = sealBlob(KEY, data);
    expect(openBlob(KEY, sealed).equals(data)).toBe(true);
    expect(() => openField(KEY, sealed, AAD)).toThrow(DecryptionError);
    expect(() => openBlob(randomBytes(32), sealed)).toThrow(DecryptionError);
  });
});
