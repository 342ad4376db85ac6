import { onPrimary, stackEnv } from './global-setup.mjs';

/** The pid a database of createTestDatabase carries (`dbu_test_r<pid>_...`), or null. */
function runPid(datname) {
  const m = /^dbu_test_r(\d+)_/.exec(datname);
  return m ? Number(m[1]) : null;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * Drops this run's test databases and those a crashed run left behind. A database of
 * another jest run that is still going (two `npm run fuzz` runs side by side) is kept:
 * its name carries that run's pid. Databases with fixed names (no pid) are dropped.
 */
export default async function globalTeardown() {
  const env = await stackEnv();
  const res = await onPrimary(
    env,
    `SELECT datname, pg_get_userbyid(datdba) AS owner
       FROM pg_database WHERE datname LIKE 'dbu\\_test\\_%' AND datname <> 'dbu_test_template'`,
  );
  // Keystore databases belong to the service's role (it creates them), the rest to the owner.
  for (const { datname, owner } of res.rows) {
    const pid = runPid(datname);
    if (pid !== null && pid !== process.pid && alive(pid)) {
      continue;
    }
    const as = owner === env.DB_USER ? 'service' : 'owner';
    await onPrimary(env, `DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`, as);
  }
}
