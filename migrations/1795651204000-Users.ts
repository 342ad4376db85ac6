import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Users, their profile and their taste profile (one row each per user). */
export class Users1795651204000 implements MigrationInterface {
  name = 'Users1795651204000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE users (
        id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        email        text        NOT NULL,
        display_name text        NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE UNIQUE INDEX users_email_uq ON users (lower(email))`);
    await q.query(`
      CREATE TABLE user_profiles (
        user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        data       jsonb       NOT NULL DEFAULT '{}',
        version    integer     NOT NULL DEFAULT 1,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE taste_profiles (
        user_id           uuid         PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        liked_cuisines    text[]       NOT NULL DEFAULT '{}',
        liked_ingredients text[]       NOT NULL DEFAULT '{}',
        dislikes          text[]       NOT NULL DEFAULT '{}',
        embedding         vector(1536),
        version           integer      NOT NULL DEFAULT 1,
        updated_at        timestamptz  NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE taste_profiles`);
    await q.query(`DROP TABLE user_profiles`);
    await q.query(`DROP TABLE users`);
  }
}
