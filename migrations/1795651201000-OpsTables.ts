import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Operational tables: scheduled job history, the replication heartbeat written by
 * the leader (lag in seconds that stays true when the primary is idle), and
 * routing probes operators use to see which node serves reads.
 */
export class OpsTables1795651201000 implements MigrationInterface {
  name = 'OpsTables1795651201000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE ops_job_runs (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job         text        NOT NULL,
        instance_id text        NOT NULL,
        status      text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        started_at  timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        detail      jsonb
      )`);
    await q.query(
      `CREATE INDEX ops_job_runs_job_started_idx ON ops_job_runs (job, started_at DESC)`,
    );
    await q.query(`
      CREATE TABLE ops_heartbeat (
        id          smallint    PRIMARY KEY CHECK (id = 1),
        instance_id text        NOT NULL,
        beat_at     timestamptz NOT NULL
      )`);
    await q.query(`
      CREATE TABLE ops_probes (
        id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
        note       text        NOT NULL DEFAULT '',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE ops_probes`);
    await q.query(`DROP TABLE ops_heartbeat`);
    await q.query(`DROP TABLE ops_job_runs`);
  }
}
