import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Idempotency-Key of mutating requests: the first result per (API key, key), and
 * whether that request's write committed (set inside the writing transaction), so a
 * retry after an unknown outcome never writes twice.
 */
export class IdempotencyKeys1795651209000 implements MigrationInterface {
  name = 'IdempotencyKeys1795651209000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE idempotency_keys (
        api_key_id      text        NOT NULL,
        key             text        NOT NULL,
        method          text        NOT NULL,
        path            text        NOT NULL,
        request_sha256  text        NOT NULL,
        status          text        NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed')),
        committed       boolean     NOT NULL DEFAULT false,
        response_status integer,
        response_body   jsonb,
        created_at      timestamptz NOT NULL DEFAULT now(),
        completed_at    timestamptz,
        PRIMARY KEY (api_key_id, key)
      )`);
    await q.query(`CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE idempotency_keys`);
  }
}
