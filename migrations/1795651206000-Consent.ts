import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Consent: immutable policy versions per purpose (text + SHA-256, effective date) and
 * an append-only history of grants and withdrawals, each against one exact version.
 */
export class Consent1795651206000 implements MigrationInterface {
  name = 'Consent1795651206000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE consent_policies (
        purpose      text        NOT NULL,
        version      integer     NOT NULL CHECK (version >= 1),
        text         text        NOT NULL,
        text_sha256  text        NOT NULL,
        effective_at timestamptz NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (purpose, version)
      )`);
    await q.query(`
      CREATE TABLE consent_events (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        purpose        text        NOT NULL,
        policy_version integer     NOT NULL,
        granted        boolean     NOT NULL,
        source         text        NOT NULL,
        actor          text,
        occurred_at    timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (purpose, policy_version) REFERENCES consent_policies (purpose, version)
      )`);
    await q.query(`CREATE INDEX consent_events_user_idx ON consent_events (user_id, purpose, id)`);
    // Policies and the history are immutable; erasure removes a user's events by cascade only.
    await q.query(`
      CREATE FUNCTION consent_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'consent_events' AND pg_trigger_depth() > 1 THEN
          RETURN OLD; -- cascade from users (erasure)
        END IF;
        RAISE EXCEPTION '% is immutable: % is not allowed', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`CREATE TRIGGER consent_policies_immutable BEFORE UPDATE OR DELETE ON consent_policies
      FOR EACH ROW EXECUTE FUNCTION consent_immutable()`);
    await q.query(`CREATE TRIGGER consent_events_immutable BEFORE UPDATE OR DELETE ON consent_events
      FOR EACH ROW EXECUTE FUNCTION consent_immutable()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE consent_events`);
    await q.query(`DROP TABLE consent_policies`);
    await q.query(`DROP FUNCTION consent_immutable()`);
  }
}
