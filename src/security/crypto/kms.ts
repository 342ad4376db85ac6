/**
 * Envelope encryption: personal data is sealed with a per-user data key
 * (AES-256-GCM); the data key is stored only wrapped by a master key that never
 * leaves the KMS. Providers: `local` (master key versions from config or a file)
 * and `aws` (AWS KMS GenerateDataKey / Decrypt).
 */
export interface WrappedDataKey {
  /** Which master key (and version) wrapped it, e.g. `local:v2` or a KMS key ARN. */
  keyId: string;
  ciphertext: Buffer;
}

export interface GeneratedDataKey {
  /** 32 bytes; kept in memory only. */
  plaintext: Buffer;
  wrapped: WrappedDataKey;
}

/** Bound to the wrapped key: unwrapping with another context fails (AWS EncryptionContext / AAD). */
export type KeyContext = Record<string, string>;

export interface KmsProvider {
  readonly name: 'local' | 'aws';
  /** The key id new data keys are wrapped with. */
  currentKeyId(): string;
  generateDataKey(context: KeyContext): Promise<GeneratedDataKey>;
  decryptDataKey(wrapped: WrappedDataKey, context: KeyContext): Promise<Buffer>;
  /** Re-wraps under the current master key (rotation); the data key itself is unchanged. */
  rewrap(wrapped: WrappedDataKey, context: KeyContext): Promise<WrappedDataKey>;
}

export const KMS_PROVIDER = Symbol('KMS_PROVIDER');

/** Unwrapping or decryption failed: wrong key, wrong context, or tampered bytes. */
export class DecryptionError extends Error {
  constructor(message = 'decryption failed') {
    super(message);
    this.name = 'DecryptionError';
  }
}

/** The KMS could not be reached or refused the request. */
export class KmsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KmsUnavailableError';
  }
}
