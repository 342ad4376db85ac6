import { loadConfig } from '../../src/config/app-config.js';
import { discoverTopology, runMigrationsLocked } from '../../src/database/boot.js';
import { adminQuery, assertTestDatabase, stackDb, TEMPLATE_DB } from './databases.js';
import { stackEnv } from './stack.js';

/** Migrates the template database once; each test file copies it (see databases.ts). */
export default async function globalSetup(): Promise<void> {
  process.env.TZ = 'UTC';
  const env = await stackEnv();
  const db = stackDb(env);
  assertTestDatabase(TEMPLATE_DB);
  await adminQuery(
    db,
    db.primaryPort,
    'postgres',
    `DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`,
  );
  await adminQuery(db, db.primaryPort, 'postgres', `CREATE DATABASE ${TEMPLATE_DB}`);
  const config = loadConfig({ ...env, DB_NAME: TEMPLATE_DB, NODE_ENV: 'test', LOG_LEVEL: 'warn' });
  const topology = await discoverTopology(config);
  await runMigrationsLocked(config, topology);
}
