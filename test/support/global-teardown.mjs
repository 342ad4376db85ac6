import { onPrimary, stackEnv } from './global-setup.mjs';

/** Drops test databases that a crashed run may have left behind. */
export default async function globalTeardown() {
  const env = await stackEnv();
  const res = await onPrimary(
    env,
    `SELECT datname, pg_get_userbyid(datdba) AS owner
       FROM pg_database WHERE datname LIKE 'dbu\\_test\\_%' AND datname <> 'dbu_test_template'`,
  );
  // Keystore databases belong to the service's role (it creates them), the rest to the owner.
  for (const { datname, owner } of res.rows) {
    const as = owner === env.DB_USER ? 'service' : 'owner';
    await onPrimary(env, `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`, as);
  }
}
