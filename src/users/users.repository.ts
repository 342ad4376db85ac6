import { Injectable } from '@nestjs/common';
import pgvector from 'pgvector';
import type { EntityManager } from 'typeorm';
import { queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { PersonalDataCipher } from '../security/crypto/personal-data-cipher.js';
import type { PutTasteProfileDto } from './dto/user.dto.js';

export interface UserRow {
  id: string;
  email: string;
  displayName: string;
  createdAt: Date;
}

export interface ProfileRow {
  userId: string;
  data: Record<string, unknown>;
  version: number;
  updatedAt: Date;
}

export interface TasteProfileRow {
  userId: string;
  likedCuisines: string[];
  likedIngredients: string[];
  dislikes: string[];
  hasEmbedding: boolean;
  version: number;
  updatedAt: Date;
}

interface TastePrefs {
  likedCuisines: string[];
  likedIngredients: string[];
  dislikes: string[];
}

const USER = `id::text AS id, email_enc AS "emailEnc", display_name_enc AS "displayNameEnc", created_at AS "createdAt"`;
const PROFILE = `user_id::text AS "userId", data_enc AS "dataEnc", version, updated_at AS "updatedAt"`;
const TASTE = `user_id::text AS "userId", prefs_enc AS "prefsEnc", embedding IS NOT NULL AS "hasEmbedding",
  version, updated_at AS "updatedAt"`;

type SealedUser = Omit<UserRow, 'email' | 'displayName'> & {
  emailEnc: Buffer;
  displayNameEnc: Buffer;
};
type SealedProfile = Omit<ProfileRow, 'data'> & { dataEnc: Buffer };
type SealedTaste = Omit<TasteProfileRow, keyof TastePrefs> & { prefsEnc: Buffer };

/**
 * Users and their profiles. Every personal field (email, display name, profile
 * data, taste preferences) is sealed here with the user's data key before it is
 * written and opened after it is read; no caller sees ciphertext or keys. The
 * taste embedding stays in clear: similarity search needs it in the database.
 */
@Injectable()
export class UsersRepository {
  constructor(
    private readonly router: ReadRouterService,
    private readonly cipher: PersonalDataCipher,
  ) {}

  async create(m: EntityManager, email: string, displayName: string): Promise<UserRow> {
    const ids: Array<{ id: string }> = await m.query(`SELECT gen_random_uuid()::text AS id`);
    const id = ids[0].id;
    const rows: SealedUser[] = await m.query(
      `INSERT INTO users (id, email_enc, email_hash, display_name_enc) VALUES ($1, $2, $3, $4) RETURNING ${USER}`,
      [
        id,
        await this.cipher.seal(id, 'email', email),
        this.cipher.emailHash(email),
        await this.cipher.seal(id, 'display_name', displayName),
      ],
    );
    return this.openUser(rows[0]);
  }

  getById(id: string): Promise<UserRow | null> {
    return this.router.read(async (m) => {
      const rows: SealedUser[] = await m.query(`SELECT ${USER} FROM users WHERE id = $1`, [id]);
      return rows[0] ? this.openUser(rows[0]) : null;
    });
  }

  /** Looks a user up by email through the keyed hash (the clear email is never stored). */
  getByEmail(email: string): Promise<UserRow | null> {
    return this.router.read(async (m) => {
      const rows: SealedUser[] = await m.query(`SELECT ${USER} FROM users WHERE email_hash = $1`, [
        this.cipher.emailHash(email),
      ]);
      return rows[0] ? this.openUser(rows[0]) : null;
    });
  }

  async exists(m: EntityManager, id: string): Promise<boolean> {
    const rows: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [id]);
    return rows.length > 0;
  }

  /**
   * For a conditional write (If-Match): locks the user's row (concurrent conditional
   * writes of its profiles wait; foreign-key checks do not) and answers the version of
   * its `table` row, 0 when it has none yet. Null for an unknown user.
   */
  async lockedVersion(
    m: EntityManager,
    table: 'user_profiles' | 'taste_profiles',
    userId: string,
  ): Promise<number | null> {
    const rows: Array<{ version: number | null }> = await m.query(
      `SELECT (SELECT version FROM ${table} WHERE user_id = u.id) AS version
         FROM users u WHERE u.id = $1 FOR NO KEY UPDATE OF u`,
      [userId],
    );
    return rows.length === 0 ? null : (rows[0].version ?? 0);
  }

  getProfile(userId: string): Promise<ProfileRow | null> {
    return this.router.read((m) => this.profileIn(m, userId));
  }

  async profileIn(m: EntityManager, userId: string): Promise<ProfileRow | null> {
    const rows: SealedProfile[] = await m.query(
      `SELECT ${PROFILE} FROM user_profiles WHERE user_id = $1`,
      [userId],
    );
    return rows[0] ? this.openProfile(rows[0]) : null;
  }

  async putProfile(
    m: EntityManager,
    userId: string,
    data: Record<string, unknown>,
  ): Promise<ProfileRow> {
    const rows: SealedProfile[] = await m.query(
      `INSERT INTO user_profiles (user_id, data_enc) VALUES ($1, $2)
       ON CONFLICT (user_id) DO UPDATE SET data_enc = EXCLUDED.data_enc, version = user_profiles.version + 1, updated_at = now()
       RETURNING ${PROFILE}`,
      [userId, await this.cipher.seal(userId, 'profile', data)],
    );
    const { userId: id, version, updatedAt } = rows[0];
    return { userId: id, data, version, updatedAt };
  }

  getTasteProfile(userId: string): Promise<TasteProfileRow | null> {
    return this.router.read((m) => this.tasteIn(m, userId));
  }

  async tasteIn(m: EntityManager, userId: string): Promise<TasteProfileRow | null> {
    const rows: SealedTaste[] = await m.query(
      `SELECT ${TASTE} FROM taste_profiles WHERE user_id = $1`,
      [userId],
    );
    return rows[0] ? this.openTaste(rows[0]) : null;
  }

  async putTasteProfile(
    m: EntityManager,
    userId: string,
    t: PutTasteProfileDto,
  ): Promise<TasteProfileRow> {
    const prefs: TastePrefs = {
      likedCuisines: t.likedCuisines,
      likedIngredients: t.likedIngredients,
      dislikes: t.dislikes,
    };
    const rows: SealedTaste[] = await m.query(
      `INSERT INTO taste_profiles (user_id, prefs_enc, embedding)
       VALUES ($1, $2, $3::vector)
       ON CONFLICT (user_id) DO UPDATE SET prefs_enc = EXCLUDED.prefs_enc,
         embedding = EXCLUDED.embedding, version = taste_profiles.version + 1, updated_at = now()
       RETURNING ${TASTE}`,
      [
        userId,
        await this.cipher.seal(userId, 'taste', prefs),
        t.embedding ? pgvector.toSql(t.embedding) : null,
      ],
    );
    const { userId: id, hasEmbedding, version, updatedAt } = rows[0];
    return { userId: id, ...prefs, hasEmbedding, version, updatedAt };
  }

  /** The user row in clear, in the caller's transaction (export). */
  async userIn(m: EntityManager, id: string): Promise<UserRow | null> {
    const rows: SealedUser[] = await m.query(`SELECT ${USER} FROM users WHERE id = $1`, [id]);
    return rows[0] ? this.openUser(rows[0]) : null;
  }

  /** Deletes the user; profiles, consents and exports go with it (ON DELETE CASCADE). */
  async delete(m: EntityManager, id: string): Promise<number> {
    const rows = await queryRows(m, `DELETE FROM users WHERE id = $1 RETURNING 1`, [id]);
    return rows.length;
  }

  private async openUser(r: SealedUser): Promise<UserRow> {
    return {
      id: r.id,
      email: await this.cipher.open<string>(r.id, 'email', r.emailEnc),
      displayName: await this.cipher.open<string>(r.id, 'display_name', r.displayNameEnc),
      createdAt: r.createdAt,
    };
  }

  private async openProfile(r: SealedProfile): Promise<ProfileRow> {
    return {
      userId: r.userId,
      data: await this.cipher.open<Record<string, unknown>>(r.userId, 'profile', r.dataEnc),
      version: r.version,
      updatedAt: r.updatedAt,
    };
  }

  private async openTaste(r: SealedTaste): Promise<TasteProfileRow> {
    const prefs = await this.cipher.open<TastePrefs>(r.userId, 'taste', r.prefsEnc);
    return {
      userId: r.userId,
      ...prefs,
      hasEmbedding: r.hasEmbedding,
      version: r.version,
      updatedAt: r.updatedAt,
    };
  }
}
