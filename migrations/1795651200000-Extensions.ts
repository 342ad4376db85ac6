import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * pgvector and pg_stat_statements. On the local stack and in docker compose both are
 * already created in template1 by a superuser, so IF NOT EXISTS makes this a no-op
 * for the (non-superuser) application role; on RDS the role needs rds_superuser once.
 */
export class Extensions1795651200000 implements MigrationInterface {
  name = 'Extensions1795651200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE EXTENSION IF NOT EXISTS vector`);
    await q.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP EXTENSION IF EXISTS pg_stat_statements`);
    await q.query(`DROP EXTENSION IF EXISTS vector`);
  }
}
