import type { AppConfig } from '../../config/app-config.js';
import { AwsKmsProvider } from './aws-kms.provider.js';
import type { KmsProvider } from './kms.js';
import { decodeKeyMaterial, LocalKmsProvider } from './local-kms.provider.js';

const MIN_PII_HASH_KEY_BYTES = 32;

export function createKmsProvider(config: AppConfig): KmsProvider {
  switch (config.crypto.provider) {
    case 'local':
      return new LocalKmsProvider(config.crypto.local, config.env);
    case 'aws':
      return new AwsKmsProvider(config.crypto.aws);
  }
}

/**
 * The HMAC key for keyed hashes of personal data. It lives outside the KMS because hashes
 * are computed on every lookup, and must never change: a new key orphans every stored hash.
 */
export function piiHashKeyFrom(config: AppConfig, provider: KmsProvider): Buffer {
  if (config.crypto.piiHashKey) {
    return decodeKeyMaterial(config.crypto.piiHashKey, 'PII_HASH_KEY', MIN_PII_HASH_KEY_BYTES);
  }
  if (provider instanceof LocalKmsProvider) {
    return provider.hashKey();
  }
  throw new Error(
    `PII_HASH_KEY is required with KMS_PROVIDER=${provider.name} (base64, at least ${MIN_PII_HASH_KEY_BYTES} bytes)`,
  );
}
