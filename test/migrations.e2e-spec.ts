import { loadConfig } from '../src/config/app-config.js';
import { discoverTopology, runMigrationsLocked } from '../src/database/boot.js';
import {
  adminQuery,
  assertTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';

describe('migrations under an advisory lock', () => {
  let db: StackDb;
  const database = `dbu_test_migrate_${process.pid}`;

  afterAll(async () => {
    await dropTestDatabase(db, database);
  });

  it('migrates once when two instances start together', async () => {
    const env = await stackEnv();
    db = stackDb(env);
    assertTestDatabase(database);
    await adminQuery(db, db.primaryPort, 'postgres', `CREATE DATABASE ${database}`);
    const config = loadConfig({ ...env, DB_NAME: database, NODE_ENV: 'test', LOG_LEVEL: 'warn' });
    const topology = await discoverTopology(config);

    const [one, two] = await Promise.all([
      runMigrationsLocked(config, topology),
      runMigrationsLocked(config, topology),
    ]);
    const ran = [...one, ...two];
    const applied = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT name FROM typeorm_migrations ORDER BY id',
    );
    const names = (applied.rows as Array<{ name: string }>).map((r) => r.name);
    expect(names.length).toBeGreaterThan(0);
    expect(new Set(names).size).toBe(names.length);
    // One instance applied everything, the other found nothing left to do.
    expect(ran.sort()).toEqual([...names].sort());
    expect([one.length, two.length].sort()).toEqual([0, names.length]);

    const ext = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT extname FROM pg_extension WHERE extname IN ('vector','pg_stat_statements') ORDER BY 1`,
    );
    expect((ext.rows as Array<{ extname: string }>).map((r) => r.extname)).toEqual([
      'pg_stat_statements',
      'vector',
    ]);
  });
});
