import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A replayed answer carries the first answer's headers that name or version what was
 * written (Location, ETag, x-write-lsn), not only its body (issue 15).
 */
export class IdempotencyResponseHeaders1795651218500 implements MigrationInterface {
  name = 'IdempotencyResponseHeaders1795651218500';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE idempotency_keys ADD COLUMN response_headers jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE idempotency_keys DROP COLUMN response_headers`);
  }
}
