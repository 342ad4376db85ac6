import type { AppConfig, NodeAddress } from '../../config/app-config.js';
import { Keystore } from '../keystore/keystore.js';
import { DataKeys } from './data-keys.js';
import { ledgerHash } from './keyed-hash.js';
import { createKmsProvider, piiHashKeyFrom } from './kms.factory.js';
import type { KmsProvider } from './kms.js';
import { PersonalDataCipher } from './personal-data-cipher.js';

export interface PersonalDataCrypto {
  kms: KmsProvider;
  keystore: Keystore;
  dataKeys: DataKeys;
  cipher: PersonalDataCipher;
  close(): Promise<void>;
}

/**
 * Everything envelope encryption needs, built from config and the writer's address:
 * the Nest module and the migration that encrypts existing rows both use this.
 */
export async function createPersonalDataCrypto(
  config: AppConfig,
  writer: NodeAddress,
  opts: { cache?: boolean } = {},
): Promise<PersonalDataCrypto> {
  const kms = createKmsProvider(config);
  const keystore = new Keystore(config, writer);
  try {
    await keystore.ensure();
  } catch (err) {
    await keystore.close();
    throw err;
  }
  const hashKey = piiHashKeyFrom(config, kms);
  const dataKeys = new DataKeys(
    kms,
    keystore,
    opts.cache === false ? { ttlMs: 0, max: 0 } : config.crypto.dataKeyCache,
    (userId) => ledgerHash(hashKey, userId),
  );
  const cipher = new PersonalDataCipher(dataKeys, hashKey);
  const close = async (): Promise<void> => {
    await keystore.close();
    // The AWS client keeps keep-alive sockets open until destroyed.
    (kms as Partial<{ onModuleDestroy(): void }>).onModuleDestroy?.();
  };
  return { kms, keystore, dataKeys, cipher, close };
}
