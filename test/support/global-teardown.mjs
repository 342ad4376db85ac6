import { onPrimary, stackEnv } from './global-setup.mjs';

/** Drops test databases that a crashed run may have left behind. */
export default async function globalTeardown() {
  const env = await stackEnv();
  const res = await onPrimary(
    env,
    `SELECT datname FROM pg_database WHERE datname LIKE 'dbu\\_test\\_%' AND datname <> 'dbu_test_template'`,
  );
  for (const { datname } of res.rows) {
    await onPrimary(env, `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
  }
}
