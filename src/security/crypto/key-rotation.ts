import { Logger } from '@nestjs/common';
import pg from 'pg';
import type { AppConfig, NodeAddress } from '../../config/app-config.js';
import { directClientConfig, withDirectClient } from '../../database/pg-direct.js';
import { userKeyContext } from './data-keys.js';
import type { PersonalDataCrypto } from './personal-data-crypto.js';

const logger = new Logger('KeyRotation');
const BATCH = 500;

export interface RewrapOutcome {
  currentKeyId: string;
  userKeysRewrapped: number;
  auditKeysRewrapped: number;
}

/**
 * Re-wraps every data key (users' in the keystore, the audit log's in
 * `audit_data_keys`) under the KMS's current master key. The data keys themselves
 * do not change, so no ciphertext is touched; afterwards the old master key
 * version can be retired. Safe to re-run and to interrupt.
 */
export async function rewrapAll(
  config: AppConfig,
  writer: NodeAddress,
  crypto: PersonalDataCrypto,
): Promise<RewrapOutcome> {
  const current = crypto.kms.currentKeyId();
  let userKeysRewrapped = 0;
  // One pass in user id order: with AWS the configured key id may be an alias that is
  // never equal to the stored ARN, so "not yet rewrapped" cannot be the loop condition.
  let after: string | null = null;
  for (;;) {
    const batch = await crypto.keystore.wrappedWithOtherThan(current, BATCH, after);
    for (const { userId, wrapped } of batch) {
      const next = await crypto.kms.rewrap(wrapped, userKeyContext(userId));
      if (await crypto.keystore.replace(userId, wrapped, next)) {
        userKeysRewrapped += 1;
      }
    }
    if (batch.length < BATCH) {
      break;
    }
    after = batch[batch.length - 1].userId;
    logger.log({ userKeysRewrapped }, 'rewrapping user data keys');
  }
  const auditKeysRewrapped = await withDirectClient(
    directClientConfig(config.database, writer, { noQueryTimeout: true }),
    async (c: pg.Client) => {
      const rows = await c.query<{ id: number; key_id: string; wrapped: Buffer }>(
        'SELECT id, key_id, wrapped FROM audit_data_keys WHERE key_id <> $1',
        [current],
      );
      for (const r of rows.rows) {
        const next = await crypto.kms.rewrap(
          { keyId: r.key_id, ciphertext: r.wrapped },
          { purpose: 'audit-details', auditKey: String(r.id) },
        );
        await c.query('UPDATE audit_data_keys SET key_id = $2, wrapped = $3 WHERE id = $1', [
          r.id,
          next.keyId,
          next.ciphertext,
        ]);
      }
      return rows.rowCount ?? 0;
    },
  );
  return { currentKeyId: current, userKeysRewrapped, auditKeysRewrapped };
}
