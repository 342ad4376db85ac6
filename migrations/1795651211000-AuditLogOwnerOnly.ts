import pg from 'pg';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { serviceRole } from './1795651210000-ServiceRolePrivileges.js';

/** Search path of every SECURITY DEFINER function here: nobody but the owner creates in `public`. */
const DEFINER = `SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC'`;

/** Functions the service may call (EXECUTE is revoked from PUBLIC for all of them). */
const SERVICE_FUNCTIONS = [
  'audit_lock_chain_head()',
  'audit_create_partitions(integer)',
  'audit_drop_partition(text, integer)',
];
const OWNER_FUNCTIONS = [
  'audit_create_partition(date)',
  'audit_logs_link()',
  'audit_append_only()',
];

/**
 * The audit log against the service's own role: the owner (migrations) owns every audit
 * table, partition and function; the service may only read and append.
 *
 * - `audit_logs`, `audit_digests`, `audit_verifications`: SELECT and INSERT;
 *   `audit_chain_head`, `audit_retention_checkpoints`: SELECT; partitions: nothing of
 *   their own (they are reached through `audit_logs`). Not being the owner, the service
 *   cannot disable triggers, detach or drop partitions, truncate, or grant itself back.
 * - Appending: `audit_lock_chain_head()` locks the head for the caller's transaction; a
 *   BEFORE INSERT trigger accepts only the row that extends the chain (next seq, prev_hash
 *   = head hash, not dated before the head) and moves the head. So partitions hold
 *   consecutive stretches of the chain and the oldest can go without leaving holes.
 * - Partitions: `audit_create_partitions(n)` makes this month's and the next n monthly
 *   partitions; `audit_drop_partition(name, years)` drops a monthly partition only when
 *   it ended at least `years` (never under 7) before this month, and only when its rows
 *   are the oldest stretch of the chain; in the same transaction it writes a sealed
 *   checkpoint (last dropped seq and hash, counts) to `audit_retention_checkpoints`,
 *   which verification starts from.
 * - `audit_verifications`: where a verification got to (seq, hash), so the next one can
 *   continue from there.
 * - `audit_data_keys`: SELECT, INSERT and UPDATE (key rotation re-wraps in place), no DELETE.
 */
export class AuditLogOwnerOnly1795651211000 implements MigrationInterface {
  name = 'AuditLogOwnerOnly1795651211000';

  async up(q: QueryRunner): Promise<void> {
    const service = await serviceRole(q);

    await q.query(`
      CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`
      CREATE TABLE audit_retention_checkpoints (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        partition       text        NOT NULL,
        range_from      timestamptz NOT NULL,
        range_to        timestamptz NOT NULL,
        rows_dropped    bigint      NOT NULL,
        first_seq       bigint,
        last_seq        bigint,
        sealed_seq      bigint      NOT NULL,
        sealed_hash     text        NOT NULL,
        retention_years integer     NOT NULL,
        dropped_at      timestamptz NOT NULL DEFAULT now(),
        dropped_by      text        NOT NULL DEFAULT session_user
      )`);
    await q.query(`
      COMMENT ON COLUMN audit_retention_checkpoints.sealed_seq IS
        'every row up to this seq has been dropped; row sealed_seq + 1 must have prev_hash = sealed_hash'`);
    await q.query(`
      CREATE TABLE audit_verifications (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        mode         text        NOT NULL CHECK (mode IN ('full', 'incremental')),
        from_seq     bigint      NOT NULL,
        seq          bigint      NOT NULL,
        hash         text        NOT NULL,
        rows_checked bigint      NOT NULL,
        verified_at  timestamptz NOT NULL DEFAULT now()
      )`);
    for (const table of ['audit_digests', 'audit_retention_checkpoints', 'audit_verifications']) {
      await q.query(`CREATE TRIGGER ${table}_no_change BEFORE UPDATE OR DELETE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION audit_append_only()`);
      await q.query(`CREATE TRIGGER ${table}_no_truncate BEFORE TRUNCATE ON ${table}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()`);
    }

    // The head also carries the newest row's time: occurred_at never goes back along the chain.
    await q.query(`ALTER TABLE audit_chain_head ADD COLUMN occurred_at timestamptz`);
    await q.query(
      `UPDATE audit_chain_head SET occurred_at = (SELECT max(occurred_at) FROM audit_logs) WHERE id = 1`,
    );
    await q.query(`
      CREATE FUNCTION audit_lock_chain_head(OUT seq bigint, OUT hash text, OUT occurred_at timestamptz)
      LANGUAGE sql ${DEFINER} AS $$
        SELECT h.seq, h.hash, h.occurred_at FROM public.audit_chain_head h WHERE h.id = 1 FOR UPDATE
      $$`);
    await q.query(`
      CREATE FUNCTION audit_logs_link() RETURNS trigger LANGUAGE plpgsql ${DEFINER} AS $$
      DECLARE
        head public.audit_chain_head;
      BEGIN
        SELECT * INTO head FROM public.audit_chain_head WHERE id = 1 FOR UPDATE;
        IF NEW.seq IS DISTINCT FROM head.seq + 1 OR NEW.prev_hash IS DISTINCT FROM head.hash THEN
          RAISE EXCEPTION 'audit_logs: row % does not extend the chain (head: seq %)', NEW.seq, head.seq
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF NEW.occurred_at < head.occurred_at THEN
          RAISE EXCEPTION 'audit_logs: row % is dated %, before the row it follows (%)',
            NEW.seq, NEW.occurred_at, head.occurred_at USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        IF NEW.occurred_at > clock_timestamp() + interval '5 minutes' THEN
          RAISE EXCEPTION 'audit_logs: row % is dated in the future (%)', NEW.seq, NEW.occurred_at
            USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        UPDATE public.audit_chain_head
           SET seq = NEW.seq, hash = NEW.hash, occurred_at = NEW.occurred_at
         WHERE id = 1;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER audit_logs_link BEFORE INSERT ON audit_logs
      FOR EACH ROW EXECUTE FUNCTION audit_logs_link()`);

    // Owner only (no EXECUTE for the service): any month, e.g. back-dated for a test.
    await q.query(`
      CREATE FUNCTION audit_create_partition(p_month date) RETURNS text LANGUAGE plpgsql
      SET search_path = pg_catalog, public, pg_temp SET TimeZone = 'UTC' AS $$
      DECLARE
        lo        timestamptz := date_trunc('month', p_month::timestamp) AT TIME ZONE 'UTC';
        part_name text := format('audit_logs_y%sm%s', to_char(p_month, 'YYYY'), to_char(p_month, 'MM'));
        rel  regclass;
        who  oid;
      BEGIN
        IF to_regclass(format('public.%I', part_name)) IS NOT NULL THEN
          RETURN NULL;
        END IF;
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_logs FOR VALUES FROM (%L) TO (%L)',
                       part_name, lo, lo + interval '1 month');
        rel := format('public.%I', part_name)::regclass;
        -- Reached through audit_logs only: the schema's default privileges would give the
        -- service UPDATE, DELETE (and TRUNCATE past the parent's trigger) right here.
        FOR who IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
                    WHERE c.oid = rel AND a.grantee <> c.relowner LOOP
          EXECUTE format('REVOKE ALL ON %s FROM %s', rel,
                         CASE WHEN who = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(who)) END);
        END LOOP;
        RETURN part_name;
      END $$`);
    await q.query(`
      CREATE FUNCTION audit_create_partitions(p_months_ahead integer) RETURNS SETOF text
      LANGUAGE plpgsql ${DEFINER} AS $$
      DECLARE
        made text;
      BEGIN
        IF p_months_ahead IS NULL OR p_months_ahead NOT BETWEEN 0 AND 12 THEN
          RAISE EXCEPTION 'audit partitions are made 0 to 12 months ahead, not %', p_months_ahead
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR i IN 0 .. p_months_ahead LOOP
          made := public.audit_create_partition((date_trunc('month', now()) + make_interval(months => i))::date);
          IF made IS NOT NULL THEN
            RETURN NEXT made;
          END IF;
        END LOOP;
      END $$`);
    await q.query(`
      CREATE FUNCTION audit_drop_partition(p_partition text, p_retention_years integer)
      RETURNS public.audit_retention_checkpoints
      LANGUAGE plpgsql ${DEFINER} SET DateStyle = 'ISO, YMD' SET lock_timeout = '10s' AS $$
      DECLARE
        min_years CONSTANT integer := 7;
        ym          text[];
        part        oid;
        bound       text;
        lo          timestamptz;
        hi          timestamptz;
        cutoff      timestamptz;
        v_sealed_seq  bigint := 0;
        v_sealed_hash text := repeat('0', 64);
        n           bigint;
        v_first_seq   bigint;
        v_last_seq    bigint;
        v_first_prev  text;
        v_last_hash   text;
        hole        bigint;
        result      public.audit_retention_checkpoints;
      BEGIN
        IF p_retention_years IS NULL OR p_retention_years < min_years THEN
          RAISE EXCEPTION 'audit retention is at least % years, not %', min_years, p_retention_years
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        ym := regexp_match(p_partition, '^audit_logs_y([0-9]{4})m(0[1-9]|1[0-2])$');
        SELECT c.oid, pg_get_expr(c.relpartbound, c.oid) INTO part, bound
          FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid
         WHERE c.relname = p_partition AND c.relnamespace = 'public'::regnamespace
           AND i.inhparent = 'public.audit_logs'::regclass;
        IF ym IS NULL OR part IS NULL THEN
          RAISE EXCEPTION '% is not a monthly partition of audit_logs', p_partition
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        lo := make_timestamptz(ym[1]::int, ym[2]::int, 1, 0, 0, 0, 'UTC');
        hi := lo + interval '1 month';
        IF bound IS DISTINCT FROM format('FOR VALUES FROM (%L) TO (%L)', lo, hi) THEN
          RAISE EXCEPTION 'audit partition % does not hold exactly the month its name says (%)', p_partition, bound
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        cutoff := date_trunc('month', now()) - make_interval(years => p_retention_years);
        IF hi > cutoff THEN
          RAISE EXCEPTION 'audit partition % is younger than the % year retention: it ends %, only partitions ending by % may be dropped',
            p_partition, p_retention_years, hi, cutoff USING ERRCODE = 'insufficient_privilege';
        END IF;

        -- No append while the history is sealed, one retention drop at a time.
        PERFORM 1 FROM public.audit_chain_head WHERE id = 1 FOR UPDATE;
        SELECT c.sealed_seq, c.sealed_hash INTO v_sealed_seq, v_sealed_hash
          FROM public.audit_retention_checkpoints c ORDER BY c.id DESC LIMIT 1;
        IF NOT FOUND THEN
          v_sealed_seq := 0;
          v_sealed_hash := repeat('0', 64);
        END IF;
        EXECUTE format('SELECT count(*), min(seq), max(seq) FROM public.%I', p_partition)
          INTO n, v_first_seq, v_last_seq;
        IF n > 0 THEN
          EXECUTE format('SELECT prev_hash FROM public.%I WHERE seq = $1', p_partition)
            INTO v_first_prev USING v_first_seq;
          EXECUTE format('SELECT hash FROM public.%I WHERE seq = $1', p_partition)
            INTO v_last_hash USING v_last_seq;
          EXECUTE format(
            'SELECT min(seq) FROM (SELECT seq, prev_hash, lag(seq) OVER w AS before_seq, lag(hash) OVER w AS before_hash
                                     FROM public.%I WINDOW w AS (ORDER BY seq)) r
              WHERE before_seq IS NOT NULL AND (seq <> before_seq + 1 OR prev_hash <> before_hash)', p_partition)
            INTO hole;
          -- Only the oldest stretch of the chain goes, whole and linked, and it must
          -- continue what was sealed before: the checkpoint then stands for all of it.
          IF v_first_seq <> v_sealed_seq + 1 OR v_first_prev <> v_sealed_hash OR hole IS NOT NULL
             OR EXISTS (SELECT 1 FROM public.audit_logs WHERE seq < v_last_seq AND tableoid <> part) THEN
            RAISE EXCEPTION 'audit partition % (seq % to %) is not the linked start of the chain after the sealed seq %: not dropped',
              p_partition, v_first_seq, v_last_seq, v_sealed_seq USING ERRCODE = 'integrity_constraint_violation';
          END IF;
          v_sealed_seq := v_last_seq;
          v_sealed_hash := v_last_hash;
        END IF;
        EXECUTE format('DROP TABLE public.%I', p_partition);
        INSERT INTO public.audit_retention_checkpoints
               (partition, range_from, range_to, rows_dropped, first_seq, last_seq, sealed_seq, sealed_hash, retention_years)
        VALUES (p_partition, lo, hi, n, v_first_seq, v_last_seq, v_sealed_seq, v_sealed_hash, p_retention_years)
        RETURNING * INTO result;
        RETURN result;
      END $$`);

    for (const fn of [...SERVICE_FUNCTIONS, ...OWNER_FUNCTIONS]) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
    }
    for (const fn of SERVICE_FUNCTIONS) {
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${service}`);
    }

    // Rights: everything revoked (the schema's default privileges included), then the few back.
    const tables = [
      'audit_logs',
      'audit_chain_head',
      'audit_digests',
      'audit_retention_checkpoints',
      'audit_verifications',
      'audit_data_keys',
      ...(await partitions(q)),
    ];
    for (const table of tables) {
      await q.query(`REVOKE ALL ON ${pg.escapeIdentifier(table)} FROM PUBLIC, ${service}`);
    }
    for (const table of ['audit_digests', 'audit_retention_checkpoints', 'audit_verifications']) {
      await q.query(
        `REVOKE ALL ON SEQUENCE ${pg.escapeIdentifier(`${table}_id_seq`)} FROM PUBLIC, ${service}`,
      );
    }
    await q.query(
      `GRANT SELECT, INSERT ON audit_logs, audit_digests, audit_verifications TO ${service}`,
    );
    await q.query(`GRANT SELECT ON audit_chain_head, audit_retention_checkpoints TO ${service}`);
    await q.query(`GRANT SELECT, INSERT, UPDATE ON audit_data_keys TO ${service}`);
  }

  async down(q: QueryRunner): Promise<void> {
    const service = await serviceRole(q);
    // Back to what ServiceRolePrivileges gives: data rights on every table.
    for (const table of [
      'audit_logs',
      'audit_chain_head',
      'audit_digests',
      'audit_data_keys',
      ...(await partitions(q)),
    ]) {
      await q.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ${pg.escapeIdentifier(table)} TO ${service}`,
      );
    }
    await q.query(`GRANT USAGE, SELECT ON SEQUENCE audit_digests_id_seq TO ${service}`);
    await q.query(`DROP FUNCTION audit_drop_partition(text, integer)`);
    await q.query(`DROP FUNCTION audit_create_partitions(integer)`);
    await q.query(`DROP FUNCTION audit_create_partition(date)`);
    await q.query(`DROP TRIGGER audit_logs_link ON audit_logs`);
    await q.query(`DROP FUNCTION audit_logs_link()`);
    await q.query(`DROP FUNCTION audit_lock_chain_head()`);
    await q.query(`ALTER TABLE audit_chain_head DROP COLUMN occurred_at`);
    await q.query(`DROP TRIGGER audit_digests_no_change ON audit_digests`);
    await q.query(`DROP TRIGGER audit_digests_no_truncate ON audit_digests`);
    await q.query(`DROP TABLE audit_verifications`);
    await q.query(`DROP TABLE audit_retention_checkpoints`);
    await q.query(`DROP FUNCTION audit_append_only()`);
  }
}

async function partitions(q: QueryRunner): Promise<string[]> {
  const rows: Array<{ name: string }> = await q.query(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'audit_logs'::regclass ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}
