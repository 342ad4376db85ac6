import { loadConfig } from '../src/config/app-config.js';
import {
  discoverTopology,
  revertLastMigrationLocked,
  runMigrationsLocked,
} from '../src/database/boot.js';
import {
  adminQuery,
  assertTestDatabase,
  dropTestDatabase,
  ownerQuery,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';

describe('migrations under an advisory lock', () => {
  let db: StackDb;
  let env: Record<string, string>;
  const database = `dbu_test_migrate_${process.pid}`;
  const config = () =>
    loadConfig({ ...env, DB_NAME: database, NODE_ENV: 'test', LOG_LEVEL: 'warn' });
  const asOwner = async (sql: string, params: unknown[] = []) =>
    (await ownerQuery(db, db.primaryPort, database, sql, params)).rows as Array<
      Record<string, unknown>
    >;

  afterAll(async () => {
    await dropTestDatabase(db, database);
  });

  it('migrates once when two instances start together', async () => {
    env = await stackEnv();
    db = stackDb(env);
    assertTestDatabase(database);
    await ownerQuery(db, db.primaryPort, 'postgres', `CREATE DATABASE ${database}`);
    const topology = await discoverTopology(config());

    const [one, two] = await Promise.all([
      runMigrationsLocked(config(), topology),
      runMigrationsLocked(config(), topology),
    ]);
    const ran = [...one, ...two];
    const names = (await asOwner('SELECT name FROM typeorm_migrations ORDER BY id')).map((r) =>
      String(r.name),
    );
    expect(names.length).toBeGreaterThan(0);
    expect(new Set(names).size).toBe(names.length);
    // One instance applied everything, the other found nothing left to do.
    expect(ran.sort()).toEqual([...names].sort());
    expect([one.length, two.length].sort()).toEqual([0, names.length]);

    const ext = await asOwner(
      `SELECT extname FROM pg_extension WHERE extname IN ('vector','pg_stat_statements') ORDER BY 1`,
    );
    expect(ext.map((r) => r.extname)).toEqual(['pg_stat_statements', 'vector']);
  });

  /** What the service's role may do to the audit tables, and what it owns. */
  const serviceRights = async () => {
    const rights = await asOwner(
      `SELECT t AS "table", array_agg(p ORDER BY p) AS rights
         FROM unnest(ARRAY['audit_logs', 'audit_chain_head', 'audit_digests', 'audit_data_keys']) t,
              unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER']) p
        WHERE has_table_privilege($1, t, p)
        GROUP BY t ORDER BY t`,
      [db.user],
    );
    const owned = await asOwner(
      `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
          AND relkind IN ('r', 'p') AND relowner = $1::regrole ORDER BY 1`,
      [db.user],
    );
    return { rights, owned: owned.map((r) => r.relname) };
  };

  it("owns everything as the owner role; the service's role reads and appends the audit log only", async () => {
    const [dbOwner] = await asOwner(
      `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()`,
    );
    expect(dbOwner.owner).toBe(db.ownerUser);
    expect(await serviceRights()).toEqual({
      rights: [
        { table: 'audit_chain_head', rights: ['SELECT'] },
        { table: 'audit_data_keys', rights: ['INSERT', 'SELECT', 'UPDATE'] },
        { table: 'audit_digests', rights: ['INSERT', 'SELECT'] },
        { table: 'audit_logs', rights: ['INSERT', 'SELECT'] },
      ],
      // REINDEX CONCURRENTLY of the HNSW index needs ownership of recipes (PostgreSQL 15).
      owned: ['recipes'],
    });
    // A table a later migration adds gets the service's data rights by default.
    await asOwner(`CREATE TABLE later_feature (id int)`);
    await adminQuery(db, db.primaryPort, database, `INSERT INTO later_feature VALUES (1)`);
    await asOwner(`DROP TABLE later_feature`);
  });

  it('reverts the role split (real down) and applies it again', async () => {
    const topology = await discoverTopology(config());
    const applied = async () =>
      (await asOwner('SELECT name FROM typeorm_migrations ORDER BY id')).map((r) => String(r.name));
    while ((await applied()).includes('ServiceRolePrivileges1795651210000')) {
      await revertLastMigrationLocked(config(), topology);
    }
    expect(await serviceRights()).toEqual({ rights: [], owned: [] });
    const functions = await asOwner(
      `SELECT count(*)::int AS n FROM pg_proc WHERE proname LIKE 'audit\\_%partition%'`,
    );
    expect(functions[0].n).toBe(0);

    const ran = await runMigrationsLocked(config(), topology);
    expect(ran).toEqual(
      expect.arrayContaining([
        'ServiceRolePrivileges1795651210000',
        'AuditLogOwnerOnly1795651211000',
      ]),
    );
    expect((await serviceRights()).rights).toContainEqual({
      table: 'audit_logs',
      rights: ['INSERT', 'SELECT'],
    });
  });

  it('refuses to split roles when migrations run as the service role', async () => {
    const topology = await discoverTopology(config());
    const applied = async () =>
      (await asOwner('SELECT name FROM typeorm_migrations')).map((r) => String(r.name));
    while ((await applied()).includes('AuditLogOwnerOnly1795651211000')) {
      await revertLastMigrationLocked(config(), topology);
    }
    const sameRole = {
      ...config(),
      database: {
        ...config().database,
        migrationUser: db.user,
        migrationPassword: db.password,
      },
    };
    await expect(runMigrationsLocked(sameRole, topology)).rejects.toThrow(
      /migrations run as the service's role/,
    );
    await runMigrationsLocked(config(), topology);
  });
});
