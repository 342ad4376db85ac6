import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Recipes with their embedding, and the B-tree/GIN indexes of the search filters. */
export class Recipes1795651202000 implements MigrationInterface {
  name = 'Recipes1795651202000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE recipes (
        id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        title         text        NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
        description   text        NOT NULL DEFAULT '',
        ingredients   text[]      NOT NULL DEFAULT '{}',
        steps         text[]      NOT NULL DEFAULT '{}',
        cuisine       text        NOT NULL,
        tags          text[]      NOT NULL DEFAULT '{}',
        dietary       text[]      NOT NULL DEFAULT '{}',
        total_minutes integer     NOT NULL CHECK (total_minutes >= 0),
        author_id     uuid,
        embedding     vector(1536),
        version       integer     NOT NULL DEFAULT 1,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX recipes_cuisine_idx ON recipes (cuisine)`);
    await q.query(`CREATE INDEX recipes_total_minutes_idx ON recipes (total_minutes)`);
    await q.query(
      `CREATE INDEX recipes_author_idx ON recipes (author_id) WHERE author_id IS NOT NULL`,
    );
    await q.query(`CREATE INDEX recipes_tags_gin_idx ON recipes USING gin (tags)`);
    await q.query(`CREATE INDEX recipes_dietary_gin_idx ON recipes USING gin (dietary)`);
    await q.query(`CREATE INDEX recipes_created_idx ON recipes (created_at DESC, id DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE recipes`);
  }
}
