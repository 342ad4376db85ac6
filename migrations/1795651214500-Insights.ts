import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Performance-insights history, written by the insights sampler's leader and pruned by it
 * after INSIGHTS_RETENTION_DAYS:
 * - `insights_statement_deltas`: per pg_stat_statements snapshot, what each statement
 *   did since the previous snapshot (only statements that ran, at most
 *   INSIGHTS_MAX_STATEMENTS_PER_SNAPSHOT of them, by time).
 * - `insights_statements`: the normalised text of each queryid seen, kept apart so the
 *   deltas stay narrow.
 * - `insights_wait_minutes`: active sessions counted per minute by wait event and
 *   statement, and `insights_sample_minutes` the number of samples taken in that minute:
 *   their quotient is the average active sessions (AAS).
 */
export class Insights1795651214500 implements MigrationInterface {
  name = 'Insights1795651214500';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE insights_statement_deltas (
        captured_at      timestamptz      NOT NULL,
        interval_seconds double precision NOT NULL,
        queryid          bigint           NOT NULL,
        calls            bigint           NOT NULL,
        total_exec_ms    double precision NOT NULL,
        rows             bigint           NOT NULL,
        shared_blks_hit  bigint           NOT NULL,
        shared_blks_read bigint           NOT NULL,
        PRIMARY KEY (captured_at, queryid)
      )`);
    await q.query(`
      CREATE TABLE insights_statements (
        queryid   bigint      PRIMARY KEY,
        query     text        NOT NULL,
        last_seen timestamptz NOT NULL
      )`);
    await q.query(`
      CREATE TABLE insights_wait_minutes (
        minute          timestamptz NOT NULL,
        wait_event_type text        NOT NULL,
        wait_event      text        NOT NULL,
        -- 0: no query_id (compute_query_id off, or a statement pg_stat_statements skips)
        query_id        bigint      NOT NULL,
        sessions        bigint      NOT NULL,
        PRIMARY KEY (minute, wait_event_type, wait_event, query_id)
      )`);
    await q.query(`
      CREATE TABLE insights_sample_minutes (
        minute  timestamptz PRIMARY KEY,
        samples integer     NOT NULL
      )`);
    await q.query(
      `CREATE INDEX insights_statements_last_seen_idx ON insights_statements (last_seen)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE insights_sample_minutes`);
    await q.query(`DROP TABLE insights_wait_minutes`);
    await q.query(`DROP TABLE insights_statements`);
    await q.query(`DROP TABLE insights_statement_deltas`);
  }
}
