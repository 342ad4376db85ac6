import { adminQuery, stackDb } from './databases.js';
import { stackEnv } from './stack.js';

/** Drops test databases a crashed run may have left behind. */
export default async function globalTeardown(): Promise<void> {
  const db = stackDb(await stackEnv());
  const res = await adminQuery(
    db,
    db.primaryPort,
    'postgres',
    `SELECT datname FROM pg_database WHERE datname LIKE 'dbu\\_test\\_%' AND datname <> 'dbu_test_template'`,
  );
  for (const row of res.rows as Array<{ datname: string }>) {
    await adminQuery(
      db,
      db.primaryPort,
      'postgres',
      `DROP DATABASE IF EXISTS ${row.datname} WITH (FORCE)`,
    );
  }
}
