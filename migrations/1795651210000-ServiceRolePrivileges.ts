import pg from 'pg';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { migrationContext } from '../src/database/migration-context.js';

/**
 * The schema belongs to the role migrations run as (DB_MIGRATION_USER); the service's
 * role (DB_USER) gets data rights only: SELECT, INSERT, UPDATE and DELETE on the tables,
 * now and on every table a later migration creates (default privileges). Tables that
 * must hold less (the audit log) revoke in their own migration.
 *
 * One exception: the service owns `recipes`, because rebuilding its HNSW index
 * (`REINDEX INDEX CONCURRENTLY`, POST /v1/ops/vector-index/rebuild) needs ownership of
 * the table in PostgreSQL 15 (the grantable MAINTAIN privilege arrives in 17). The
 * owner is a member of the service's role, so later migrations can still alter it.
 */
export class ServiceRolePrivileges1795651210000 implements MigrationInterface {
  name = 'ServiceRolePrivileges1795651210000';

  async up(q: QueryRunner): Promise<void> {
    const service = await serviceRole(q);
    // PostgreSQL 15 no longer lets PUBLIC create in `public`; a cluster upgraded from an
    // older major still does, and the audit functions' search_path relies on it.
    await q.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
    await q.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${service}`,
    );
    await q.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${service}`);
    await q.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public
      GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${service}`);
    await q.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public
      GRANT USAGE, SELECT ON SEQUENCES TO ${service}`);
    // Which migrations ran is the owner's business.
    await q.query(`REVOKE ALL ON typeorm_migrations FROM ${service}`);
    await q.query(`GRANT SELECT ON typeorm_migrations TO ${service}`);
    // A new owner needs CREATE on the schema: granted for this one statement only
    // (nobody sees it, the transaction commits with the revoke).
    await q.query(`GRANT CREATE ON SCHEMA public TO ${service}`);
    await q.query(`ALTER TABLE recipes OWNER TO ${service}`);
    await q.query(`REVOKE CREATE ON SCHEMA public FROM ${service}`);
  }

  async down(q: QueryRunner): Promise<void> {
    const service = await serviceRole(q);
    await q.query(`ALTER TABLE recipes OWNER TO CURRENT_USER`);
    await q.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public
      REVOKE USAGE, SELECT ON SEQUENCES FROM ${service}`);
    await q.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public
      REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM ${service}`);
    await q.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${service}`);
    await q.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${service}`);
    // NOTE: CREATE on `public` is not given back to PUBLIC: that is PostgreSQL 15's
    // default, and the hole the revoke closed on older clusters.
  }
}

/**
 * The service's role, quoted, after checking that the split holds: migrations run
 * as another role, which owns the database and may act as the service (to hand it
 * `recipes`), while the service holds none of the owner's rights.
 */
export async function serviceRole(q: QueryRunner): Promise<string> {
  const name = migrationContext().config.database.user;
  const rows: Array<{
    me: string;
    exists: boolean;
    superuser: boolean | null;
    ownsDatabase: boolean;
    ownsSchema: boolean;
    holdsOwner: boolean | null;
    ownerActsAsService: boolean | null;
  }> = await q.query(
    `SELECT current_user AS me,
            r.oid IS NOT NULL AS exists,
            r.rolsuper AS superuser,
            d.datdba = r.oid AS "ownsDatabase",
            n.nspowner = r.oid AS "ownsSchema",
            CASE WHEN r.oid IS NOT NULL THEN pg_has_role(r.oid, current_user, 'MEMBER') END AS "holdsOwner",
            CASE WHEN r.oid IS NOT NULL THEN pg_has_role(current_user, r.oid, 'MEMBER') END AS "ownerActsAsService"
       FROM pg_database d
       JOIN pg_namespace n ON n.nspname = 'public'
       LEFT JOIN pg_roles r ON r.rolname = $1
      WHERE d.datname = current_database()`,
    [name],
  );
  const r = rows[0];
  const problems: string[] = [];
  if (!r.exists) {
    problems.push(`the service's role ${name} (DB_USER) does not exist`);
  } else {
    if (r.me === name) {
      problems.push(`migrations run as the service's role ${name}: set DB_MIGRATION_USER`);
    }
    if (r.superuser) {
      problems.push(`the service's role ${name} is a superuser`);
    }
    if (r.ownsDatabase || r.ownsSchema) {
      problems.push(
        `the service's role ${name} owns the database or its public schema: ALTER DATABASE ... OWNER TO ${r.me}`,
      );
    }
    if (r.holdsOwner) {
      problems.push(
        `the service's role ${name} is a member of ${r.me}: REVOKE ${r.me} FROM ${name}`,
      );
    }
    if (!r.ownerActsAsService) {
      problems.push(`${r.me} must be a member of ${name}: GRANT ${name} TO ${r.me}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`database roles are not set up for migrations: ${problems.join('; ')}`);
  }
  return pg.escapeIdentifier(name);
}
