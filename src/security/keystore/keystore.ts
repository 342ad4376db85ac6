import { Logger } from '@nestjs/common';
import pg from 'pg';
import type { AppConfig, NodeAddress } from '../../config/app-config.js';
import { directClientConfig, withDirectClient } from '../../database/pg-direct.js';
import type { WrappedDataKey } from '../crypto/kms.js';

const logger = new Logger('Keystore');

/** A keystore transaction that destroys one user's key; committed or rolled back by the caller. */
export interface PendingDestroy {
  /** Rows deleted (0 when the key was already gone). */
  deleted: number;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS user_data_keys (
    user_id    uuid        PRIMARY KEY,
    key_id     text        NOT NULL,
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
  )`,
  // Tombstones: keyed hashes of erased users. No key is ever made again for them, and
  // this copy of the erasure ledger survives a restore of the application database.
  `CREATE TABLE IF NOT EXISTS erased_subjects (
    subject_hash bytea       PRIMARY KEY,
    erased_at    timestamptz NOT NULL DEFAULT now()
  )`,
];

/** The user was erased: no data key may be made for them again. */
export class SubjectErasedError extends Error {
  constructor() {
    super('the user was erased; no data key is made for them again');
    this.name = 'SubjectErasedError';
  }
}

/**
 * The wrapped per-user data keys, in their own database (`KEYSTORE_DB_NAME`,
 * default `<DB_NAME>_keystore`) — never in the application database, so the
 * long-lived backups of that database hold ciphertext without the keys. Erasure
 * deletes a user's row here (crypto-shredding). In production this database sits
 * on its own instance with a short backup retention (see README "GDPR").
 */
export class Keystore {
  private pool: pg.Pool;
  private node: NodeAddress;

  /** `writer`: used unless KEYSTORE_DB_NODE names the keystore's own instance. */
  constructor(
    private readonly config: AppConfig,
    writer: NodeAddress,
  ) {
    this.node = config.crypto.keystoreNode ?? writer;
    this.pool = this.newPool();
  }

  /** Dedicated: the keystore is not on the application's writer (does not follow failovers). */
  get dedicated(): boolean {
    return this.config.crypto.keystoreNode !== null;
  }

  /** The application's writer moved (failover): a keystore living on it moves too. */
  retarget(writer: NodeAddress): void {
    if (this.dedicated || (writer.host === this.node.host && writer.port === this.node.port)) {
      return;
    }
    const old = this.pool;
    this.node = writer;
    this.pool = this.newPool();
    logger.warn({ node: `${writer.host}:${writer.port}` }, 'keystore follows the new writer');
    void old
      .end()
      .catch((err: Error) => logger.warn({ error: err.message }, 'closing the old keystore pool'));
  }

  private clientConfig(database: string): pg.ClientConfig {
    return {
      ...directClientConfig(this.config.database, this.node, {
        applicationName: 'database-unit-keystore',
      }),
      user: this.config.crypto.keystoreUser ?? this.config.database.user,
      password: this.config.crypto.keystorePassword ?? this.config.database.password,
      database,
    };
  }

  private newPool(): pg.Pool {
    const pool = new pg.Pool({
      ...this.clientConfig(this.config.crypto.keystoreDatabase),
      max: 10,
      idleTimeoutMillis: 30_000,
    });
    // NOTE: an idle client's error (node restart) must not crash the process.
    pool.on('error', (err) => logger.warn({ error: err.message }, 'keystore connection lost'));
    return pool;
  }

  get databaseName(): string {
    return this.config.crypto.keystoreDatabase;
  }

  /** Creates the keystore database and its table when missing (idempotent, safe to race). */
  async ensure(): Promise<void> {
    const name = this.config.crypto.keystoreDatabase;
    await withDirectClient(this.clientConfig('postgres'), async (c) => {
      const found = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (found.rowCount === 0) {
        try {
          // The name is validated config (an identifier), quoted here.
          await c.query(`CREATE DATABASE "${name}"`);
          logger.log({ database: name }, 'keystore database created');
        } catch (err) {
          // 42P04: another instance created it at the same moment.
          if ((err as { code?: string }).code !== '42P04') {
            throw err;
          }
        }
      }
    });
    for (const sql of SCHEMA) {
      try {
        await this.pool.query(sql);
      } catch (err) {
        // 23505/42P07: a concurrent CREATE TABLE IF NOT EXISTS won the race.
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') {
          throw err;
        }
      }
    }
  }

  async get(userId: string): Promise<WrappedDataKey | null> {
    const res = await this.pool.query<{ key_id: string; wrapped: Buffer }>(
      'SELECT key_id, wrapped FROM user_data_keys WHERE user_id = $1',
      [userId],
    );
    const row = res.rows[0];
    return row ? { keyId: row.key_id, ciphertext: row.wrapped } : null;
  }

  /**
   * Stores a key unless one exists; returns the stored one (first writer wins a race).
   * Refused for an erased user (a write racing the erasure must not re-create a key).
   */
  async putIfAbsent(
    userId: string,
    wrapped: WrappedDataKey,
    subjectHash: Buffer,
  ): Promise<WrappedDataKey> {
    const res = await this.pool.query(
      `INSERT INTO user_data_keys (user_id, key_id, wrapped)
       SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM erased_subjects WHERE subject_hash = $4)
       ON CONFLICT (user_id) DO NOTHING`,
      [userId, wrapped.keyId, wrapped.ciphertext, subjectHash],
    );
    if ((res.rowCount ?? 0) === 0 && (await this.isErased(subjectHash))) {
      throw new SubjectErasedError();
    }
    const stored = await this.get(userId);
    if (!stored) {
      throw new Error('keystore: key vanished right after insert (concurrent erasure)');
    }
    return stored;
  }

  async replace(userId: string, previous: WrappedDataKey, next: WrappedDataKey): Promise<boolean> {
    const res = await this.pool.query(
      `UPDATE user_data_keys SET key_id = $3, wrapped = $4, rotated_at = now()
        WHERE user_id = $1 AND wrapped = $2`,
      [userId, previous.ciphertext, next.keyId, next.ciphertext],
    );
    return (res.rowCount ?? 0) > 0;
  }

  /** Keys wrapped by another master key than `keyId` (rotation work list). */
  async wrappedWithOtherThan(
    keyId: string,
    limit: number,
    afterUserId: string | null,
  ): Promise<Array<{ userId: string; wrapped: WrappedDataKey }>> {
    const res = await this.pool.query<{ user_id: string; key_id: string; wrapped: Buffer }>(
      `SELECT user_id::text AS user_id, key_id, wrapped FROM user_data_keys
        WHERE key_id <> $1 AND ($3::uuid IS NULL OR user_id > $3::uuid) ORDER BY user_id LIMIT $2`,
      [keyId, limit, afterUserId],
    );
    return res.rows.map((r) => ({
      userId: r.user_id,
      wrapped: { keyId: r.key_id, ciphertext: r.wrapped },
    }));
  }

  async exists(userId: string): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM user_data_keys WHERE user_id = $1', [userId]);
    return (res.rowCount ?? 0) > 0;
  }

  /**
   * Deletes a user's key in an open keystore transaction. The caller commits it only
   * after the application database's erasure transaction committed, and rolls it
   * back otherwise — so a failed erasure leaves the key (and the data) intact.
   */
  async isErased(subjectHash: Buffer): Promise<boolean> {
    const res = await this.pool.query('SELECT 1 FROM erased_subjects WHERE subject_hash = $1', [
      subjectHash,
    ]);
    return (res.rowCount ?? 0) > 0;
  }

  /** Keyed hashes of every erased user (the keystore's copy of the erasure ledger). */
  async erasedHashes(): Promise<Buffer[]> {
    const res = await this.pool.query<{ h: Buffer }>(
      'SELECT subject_hash AS h FROM erased_subjects',
    );
    return res.rows.map((r) => r.h);
  }

  /** Deletes the key and leaves the tombstone, at once (resuming an erasure, restores). */
  async destroy(userId: string, subjectHash: Buffer): Promise<number> {
    const pending = await this.beginDestroy(userId, subjectHash);
    await pending.commit();
    return pending.deleted;
  }

  async beginDestroy(userId: string, subjectHash: Buffer): Promise<PendingDestroy> {
    const client = await this.pool.connect();
    let done = false;
    const finish = async (sql: string): Promise<void> => {
      if (done) {
        return;
      }
      done = true;
      try {
        await client.query(sql);
      } finally {
        client.release();
      }
    };
    try {
      await client.query('BEGIN');
      const res = await client.query('DELETE FROM user_data_keys WHERE user_id = $1', [userId]);
      await client.query(
        'INSERT INTO erased_subjects (subject_hash) VALUES ($1) ON CONFLICT (subject_hash) DO NOTHING',
        [subjectHash],
      );
      return {
        deleted: res.rowCount ?? 0,
        commit: () => finish('COMMIT'),
        rollback: () => finish('ROLLBACK'),
      };
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
  }

  /** User ids holding a key, in pages (re-applying the erasure ledger). */
  async userIdsAfter(after: string | null, limit: number): Promise<string[]> {
    const res = await this.pool.query<{ id: string }>(
      `SELECT user_id::text AS id FROM user_data_keys
        WHERE ($1::uuid IS NULL OR user_id > $1::uuid) ORDER BY user_id LIMIT $2`,
      [after, limit],
    );
    return res.rows.map((r) => r.id);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
