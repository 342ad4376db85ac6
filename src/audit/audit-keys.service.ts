import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { openJson, sealJson } from '../security/crypto/envelope.js';
import { KMS_PROVIDER } from '../security/crypto/kms.js';
import type { KmsProvider } from '../security/crypto/kms.js';

/** What `audit_logs.details` holds: sealed JSON, and which audit key sealed it. */
export interface SealedDetails {
  sealed: string;
  key: number;
}

const CURRENT = 1;

function context(id: number): Record<string, string> {
  return { purpose: 'audit-details', auditKey: String(id) };
}

/**
 * The audit log's own data key (wrapped by the KMS, stored in `audit_data_keys`):
 * event details may contain personal data, so they are sealed with it; the chain
 * hashes the sealed form, so verification needs no key. Unlike users' keys it is
 * never destroyed: the audit log is kept 7 years.
 */
@Injectable()
export class AuditKeysService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuditKeysService.name);
  private readonly keys = new Map<number, Promise<Buffer>>();

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(KMS_PROVIDER) private readonly kms: KmsProvider,
  ) {}

  /**
   * Loads (or creates) the key at boot, so the first audited write does not wait for
   * the KMS while it holds the chain-head lock.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.key(CURRENT, true).catch((err: Error) =>
      this.logger.warn(
        { error: err.message },
        'audit data key not loaded at boot; will retry on use',
      ),
    );
  }

  /** AAD binds the sealed details to their row. */
  async seal(seq: number, details: unknown): Promise<SealedDetails> {
    const key = await this.key(CURRENT, true);
    return {
      sealed: sealJson(key, details, `audit|${seq}`).toString('base64'),
      key: CURRENT,
    };
  }

  async open(seq: number, stored: unknown): Promise<unknown> {
    if (!isSealed(stored)) {
      return stored; // rows written before details were sealed
    }
    const key = await this.key(stored.key, false);
    return openJson(key, Buffer.from(stored.sealed, 'base64'), `audit|${seq}`);
  }

  private key(id: number, create: boolean): Promise<Buffer> {
    let p = this.keys.get(id);
    if (!p) {
      p = this.load(id, create);
      this.keys.set(id, p);
      p.catch(() => this.keys.delete(id));
    }
    return p;
  }

  private async load(id: number, create: boolean): Promise<Buffer> {
    const find = async (): Promise<{ key_id: string; wrapped: Buffer } | undefined> => {
      const rows = await this.dataSource.query<Array<{ key_id: string; wrapped: Buffer }>>(
        `SELECT key_id, wrapped FROM audit_data_keys WHERE id = $1`,
        [id],
      );
      return rows[0];
    };
    let row = await find();
    if (!row) {
      if (!create) {
        throw new Error(`audit data key ${id} does not exist`);
      }
      // Outside any caller's transaction: the first writer's key wins, all use it.
      const generated = await this.kms.generateDataKey(context(id));
      await this.dataSource.query(
        `INSERT INTO audit_data_keys (id, key_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
        [id, generated.wrapped.keyId, generated.wrapped.ciphertext],
      );
      row = await find();
      if (!row) {
        throw new Error(`audit data key ${id} vanished`);
      }
    }
    return this.kms.decryptDataKey({ keyId: row.key_id, ciphertext: row.wrapped }, context(id));
  }
}

function isSealed(v: unknown): v is SealedDetails {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as SealedDetails).sealed === 'string' &&
    typeof (v as SealedDetails).key === 'number'
  );
}
