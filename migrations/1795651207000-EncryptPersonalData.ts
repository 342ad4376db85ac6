import type { MigrationInterface, QueryRunner } from 'typeorm';
import { migrationContext } from '../src/database/migration-context.js';
import {
  createPersonalDataCrypto,
  PersonalDataCrypto,
} from '../src/security/crypto/personal-data-crypto.js';

const BATCH = 500;

/**
 * Personal fields encrypted at rest with per-user data keys (envelope encryption):
 * users.email / display_name, user_profiles.data and the taste preferences become
 * AES-256-GCM ciphertext; email lookups and uniqueness use a keyed hash. Rows that
 * already exist are encrypted here, in batches, before the clear columns are dropped.
 */
export class EncryptPersonalData1795651207000 implements MigrationInterface {
  name = 'EncryptPersonalData1795651207000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users ADD COLUMN email_enc bytea, ADD COLUMN email_hash bytea,
      ADD COLUMN display_name_enc bytea`);
    await q.query(`ALTER TABLE user_profiles ADD COLUMN data_enc bytea`);
    await q.query(`ALTER TABLE taste_profiles ADD COLUMN prefs_enc bytea`);

    await withCrypto(q, 'users', async (crypto) => {
      for (;;) {
        const rows: Array<{ id: string; email: string; display_name: string }> = await q.query(
          `SELECT id::text AS id, email, display_name FROM users WHERE email_enc IS NULL ORDER BY id LIMIT $1`,
          [BATCH],
        );
        for (const r of rows) {
          await q.query(
            `UPDATE users SET email_enc = $2, email_hash = $3, display_name_enc = $4 WHERE id = $1`,
            [
              r.id,
              await crypto.cipher.seal(r.id, 'email', r.email),
              crypto.cipher.emailHash(r.email),
              await crypto.cipher.seal(r.id, 'display_name', r.display_name),
            ],
          );
        }
        if (rows.length < BATCH) {
          break;
        }
      }
      for (;;) {
        const rows: Array<{ user_id: string; data: unknown }> = await q.query(
          `SELECT user_id::text AS user_id, data FROM user_profiles WHERE data_enc IS NULL ORDER BY user_id LIMIT $1`,
          [BATCH],
        );
        for (const r of rows) {
          await q.query(`UPDATE user_profiles SET data_enc = $2 WHERE user_id = $1`, [
            r.user_id,
            await crypto.cipher.seal(r.user_id, 'profile', r.data),
          ]);
        }
        if (rows.length < BATCH) {
          break;
        }
      }
      for (;;) {
        const rows: Array<{ user_id: string; c: string[]; i: string[]; d: string[] }> =
          await q.query(
            `SELECT user_id::text AS user_id, liked_cuisines AS c, liked_ingredients AS i, dislikes AS d
             FROM taste_profiles WHERE prefs_enc IS NULL ORDER BY user_id LIMIT $1`,
            [BATCH],
          );
        for (const r of rows) {
          await q.query(`UPDATE taste_profiles SET prefs_enc = $2 WHERE user_id = $1`, [
            r.user_id,
            await crypto.cipher.seal(r.user_id, 'taste', {
              likedCuisines: r.c,
              likedIngredients: r.i,
              dislikes: r.d,
            }),
          ]);
        }
        if (rows.length < BATCH) {
          break;
        }
      }
    });

    await q.query(`DROP INDEX users_email_uq`);
    await q.query(`ALTER TABLE users DROP COLUMN email, DROP COLUMN display_name,
      ALTER COLUMN email_enc SET NOT NULL, ALTER COLUMN email_hash SET NOT NULL,
      ALTER COLUMN display_name_enc SET NOT NULL`);
    await q.query(`CREATE UNIQUE INDEX users_email_hash_uq ON users (email_hash)`);
    await q.query(`ALTER TABLE user_profiles DROP COLUMN data, ALTER COLUMN data_enc SET NOT NULL`);
    await q.query(`ALTER TABLE taste_profiles DROP COLUMN liked_cuisines, DROP COLUMN liked_ingredients,
      DROP COLUMN dislikes, ALTER COLUMN prefs_enc SET NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE users ADD COLUMN email text, ADD COLUMN display_name text`);
    await q.query(`ALTER TABLE user_profiles ADD COLUMN data jsonb NOT NULL DEFAULT '{}'`);
    await q.query(`ALTER TABLE taste_profiles ADD COLUMN liked_cuisines text[] NOT NULL DEFAULT '{}',
      ADD COLUMN liked_ingredients text[] NOT NULL DEFAULT '{}', ADD COLUMN dislikes text[] NOT NULL DEFAULT '{}'`);
    await withCrypto(q, 'users', async (crypto) => {
      const users: Array<{ id: string; e: Buffer; n: Buffer }> = await q.query(
        `SELECT id::text AS id, email_enc AS e, display_name_enc AS n FROM users`,
      );
      for (const u of users) {
        await q.query(`UPDATE users SET email = $2, display_name = $3 WHERE id = $1`, [
          u.id,
          await crypto.cipher.open<string>(u.id, 'email', u.e),
          await crypto.cipher.open<string>(u.id, 'display_name', u.n),
        ]);
      }
      const profiles: Array<{ id: string; d: Buffer }> = await q.query(
        `SELECT user_id::text AS id, data_enc AS d FROM user_profiles`,
      );
      for (const p of profiles) {
        await q.query(`UPDATE user_profiles SET data = $2::jsonb WHERE user_id = $1`, [
          p.id,
          JSON.stringify(await crypto.cipher.open(p.id, 'profile', p.d)),
        ]);
      }
      const tastes: Array<{ id: string; p: Buffer }> = await q.query(
        `SELECT user_id::text AS id, prefs_enc AS p FROM taste_profiles`,
      );
      for (const t of tastes) {
        const prefs = await crypto.cipher.open<{
          likedCuisines: string[];
          likedIngredients: string[];
          dislikes: string[];
        }>(t.id, 'taste', t.p);
        await q.query(
          `UPDATE taste_profiles SET liked_cuisines = $2, liked_ingredients = $3, dislikes = $4 WHERE user_id = $1`,
          [t.id, prefs.likedCuisines, prefs.likedIngredients, prefs.dislikes],
        );
      }
    });
    await q.query(`DROP INDEX users_email_hash_uq`);
    await q.query(`ALTER TABLE users DROP COLUMN email_enc, DROP COLUMN email_hash, DROP COLUMN display_name_enc,
      ALTER COLUMN email SET NOT NULL, ALTER COLUMN display_name SET NOT NULL`);
    await q.query(`CREATE UNIQUE INDEX users_email_uq ON users (lower(email))`);
    await q.query(`ALTER TABLE user_profiles DROP COLUMN data_enc`);
    await q.query(`ALTER TABLE taste_profiles DROP COLUMN prefs_enc`);
  }
}

/** Builds the crypto only when `table` has rows: an empty database needs no keystore. */
async function withCrypto(
  q: QueryRunner,
  table: string,
  fn: (crypto: PersonalDataCrypto) => Promise<void>,
): Promise<void> {
  const any: unknown[] = await q.query(`SELECT 1 FROM ${table} LIMIT 1`);
  if (any.length === 0) {
    return;
  }
  const { config, topology } = migrationContext();
  const crypto = await createPersonalDataCrypto(config, topology.writer.address);
  try {
    await fn(crypto);
  } finally {
    await crypto.close();
  }
}
