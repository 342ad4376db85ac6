// Jest loads global setup outside its module mapper, so this file is plain ESM
// with no imports of the TypeScript sources. Keep TEMPLATE_DB in step with databases.ts.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
export const REPO_ROOT = join(import.meta.dirname, '..', '..');
export const TEMPLATE_DB = 'dbu_test_template';

export async function stackEnv() {
  const { stdout } = await run('bash', [join(REPO_ROOT, 'docker', 'stack.sh'), 'env'], {
    cwd: REPO_ROOT,
  });
  return Object.fromEntries(
    stdout
      .split('\n')
      .map((line) => /^export ([A-Z0-9_]+)=(.*)$/.exec(line.trim()))
      .filter(Boolean)
      .map((m) => [m[1], m[2]]),
  );
}

/** `as`: 'owner' (DB_MIGRATION_USER, owns the test databases) or 'service' (DB_USER). */
export async function onPrimary(env, sql, as = 'owner') {
  const [host, port] = env.DB_NODES.split(',')[0].split(':');
  const client = new pg.Client({
    host,
    port: Number(port),
    ...(as === 'owner'
      ? { user: env.DB_MIGRATION_USER, password: env.DB_MIGRATION_PASSWORD }
      : { user: env.DB_USER, password: env.DB_PASSWORD }),
    database: 'postgres',
    // the stack takes TCP connections over TLS only (its CA verifies the node's name)
    ssl: env.DB_SSL_CA ? { ca: readFileSync(env.DB_SSL_CA, 'utf8'), rejectUnauthorized: true } : false,
  });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * Migrates the template database once with the real migration CLI (built by
 * scripts/test.sh), as the owner role: the service's role owns nothing in it.
 */
export default async function globalSetup() {
  process.env.TZ = 'UTC';
  // scripts/test.sh migrates the template once before jest runs that go at the same time
  // (a second DROP ... WITH (FORCE) would break the other run's copies of it)
  if (process.env.TEST_TEMPLATE_READY === '1') {
    return;
  }
  const env = await stackEnv();
  // A template left by a run from before the owner role belongs to the service's role.
  const old = await onPrimary(
    env,
    `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = '${TEMPLATE_DB}'`,
  );
  const dropAs = old.rows[0]?.owner === env.DB_USER ? 'service' : 'owner';
  await onPrimary(env, `DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`, dropAs);
  await onPrimary(env, `CREATE DATABASE ${TEMPLATE_DB}`);
  await run(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'database', 'migrate.cli.js')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, DB_NAME: TEMPLATE_DB, NODE_ENV: 'test', LOG_LEVEL: 'warn' },
    timeout: 120_000,
  });
}
