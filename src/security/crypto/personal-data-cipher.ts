import { DataKeyDestroyedError, DataKeys } from './data-keys.js';
import { openJson, sealJson } from './envelope.js';
import { HashPurpose, keyedHash, ledgerHash, normalizeEmail } from './keyed-hash.js';

/**
 * Seals and opens one user's personal fields with that user's data key. The AAD
 * names the field and the user, so a ciphertext copied to another row or column
 * does not open. Lookups use keyed hashes, never the clear value.
 */
export class PersonalDataCipher {
  constructor(
    private readonly keys: DataKeys,
    private readonly hashKey: Buffer,
  ) {}

  async seal(userId: string, field: string, value: unknown): Promise<Buffer> {
    const key = await this.keys.findOrCreate(userId);
    return sealJson(key, value, aad(userId, field));
  }

  /**
   * Seals with the user's existing key only (cache entries): never creates one, so a
   * cache fill racing an erasure cannot bring a key back (DataKeyDestroyedError).
   */
  async sealExisting(userId: string, field: string, value: unknown): Promise<Buffer> {
    const key = await this.keys.find(userId);
    if (!key) {
      throw new DataKeyDestroyedError();
    }
    return sealJson(key, value, aad(userId, field));
  }

  /** Throws DataKeyDestroyedError when the user's key is gone (erased). */
  async open<T>(userId: string, field: string, sealed: Buffer): Promise<T> {
    const key = await this.keys.find(userId);
    if (!key) {
      throw new DataKeyDestroyedError();
    }
    return openJson<T>(key, sealed, aad(userId, field));
  }

  /** Keyed hash of a normalized email: the unique lookup column. */
  emailHash(email: string): Buffer {
    return keyedHash(this.hashKey, HashPurpose.Email, normalizeEmail(email));
  }

  /** Keyed hash of a user id for the erasure ledger (the id itself is never kept). */
  ledgerHash(userId: string): Buffer {
    return ledgerHash(this.hashKey, userId);
  }

  /**
   * The pseudonym of a user in the audit log (`subject_id`): stable, so a user's
   * entries can be found by id, but the id itself is not stored there.
   */
  subjectRef(userId: string): string {
    return `u_${keyedHash(this.hashKey, HashPurpose.AuditSubject, userId.toLowerCase()).toString('hex').slice(0, 40)}`;
  }

  /** Drops cached data keys: these users', or all (null). */
  forget(userId: string | null): void {
    if (userId === null) {
      this.keys.forgetAll();
    } else {
      this.keys.forget(userId);
    }
  }
}

function aad(userId: string, field: string): string {
  return `${field}|${userId}`;
}
