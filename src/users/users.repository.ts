import { Injectable } from '@nestjs/common';
import pgvector from 'pgvector';
import type { EntityManager } from 'typeorm';
import { ReadRouterService } from '../database/read-router.service.js';
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

const USER = `id::text AS id, email, display_name AS "displayName", created_at AS "createdAt"`;
const PROFILE = `user_id::text AS "userId", data, version, updated_at AS "updatedAt"`;
const TASTE = `user_id::text AS "userId", liked_cuisines AS "likedCuisines", liked_ingredients AS "likedIngredients",
  dislikes, embedding IS NOT NULL AS "hasEmbedding", version, updated_at AS "updatedAt"`;

/**
 * Users and their profiles. Every personal field (email, display name, profile
 * data, taste profile) is read and written here only, so encrypting them at rest
 * changes no caller.
 */
@Injectable()
export class UsersRepository {
  constructor(private readonly router: ReadRouterService) {}

  async create(m: EntityManager, email: string, displayName: string): Promise<UserRow> {
    const rows: UserRow[] = await m.query(
      `INSERT INTO users (email, display_name) VALUES ($1, $2) RETURNING ${USER}`,
      [email, displayName],
    );
    return rows[0];
  }

  getById(id: string): Promise<UserRow | null> {
    return this.router.read(async (m) => {
      const rows: UserRow[] = await m.query(`SELECT ${USER} FROM users WHERE id = $1`, [id]);
      return rows[0] ?? null;
    });
  }

  async exists(m: EntityManager, id: string): Promise<boolean> {
    const rows: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [id]);
    return rows.length > 0;
  }

  getProfile(userId: string): Promise<ProfileRow | null> {
    return this.router.read(async (m) => {
      const rows: ProfileRow[] = await m.query(
        `SELECT ${PROFILE} FROM user_profiles WHERE user_id = $1`,
        [userId],
      );
      return rows[0] ?? null;
    });
  }

  async putProfile(
    m: EntityManager,
    userId: string,
    data: Record<string, unknown>,
  ): Promise<ProfileRow> {
    const rows: ProfileRow[] = await m.query(
      `INSERT INTO user_profiles (user_id, data) VALUES ($1, $2::jsonb)
       ON CONFLICT (user_id) DO UPDATE SET data = EXCLUDED.data, version = user_profiles.version + 1, updated_at = now()
       RETURNING ${PROFILE}`,
      [userId, JSON.stringify(data)],
    );
    return rows[0];
  }

  getTasteProfile(userId: string): Promise<TasteProfileRow | null> {
    return this.router.read(async (m) => {
      const rows: TasteProfileRow[] = await m.query(
        `SELECT ${TASTE} FROM taste_profiles WHERE user_id = $1`,
        [userId],
      );
      return rows[0] ?? null;
    });
  }

  async putTasteProfile(
    m: EntityManager,
    userId: string,
    t: PutTasteProfileDto,
  ): Promise<TasteProfileRow> {
    const rows: TasteProfileRow[] = await m.query(
      `INSERT INTO taste_profiles (user_id, liked_cuisines, liked_ingredients, dislikes, embedding)
       VALUES ($1, $2, $3, $4, $5::vector)
       ON CONFLICT (user_id) DO UPDATE SET liked_cuisines = EXCLUDED.liked_cuisines,
         liked_ingredients = EXCLUDED.liked_ingredients, dislikes = EXCLUDED.dislikes,
         embedding = EXCLUDED.embedding, version = taste_profiles.version + 1, updated_at = now()
       RETURNING ${TASTE}`,
      [
        userId,
        t.likedCuisines,
        t.likedIngredients,
        t.dislikes,
        t.embedding ? pgvector.toSql(t.embedding) : null,
      ],
    );
    return rows[0];
  }
}
