import pg from 'pg';
import { stackDb } from './support/databases.js';
import { stack, stackCommand, stackEnv } from './support/stack.js';

/** The stack script operators and tests rely on: idempotent, and it recovers killed nodes. */
describe('docker/stack.sh', () => {
  it('reports every node up and treats a second `up` as a no-op', async () => {
    const status = await stackCommand('status');
    expect(status.stdout).toMatch(/primary\s+\S+\s+up/);
    expect(status.stdout).toMatch(/replica\s+\S+\s+up.*standby/);
    expect(status.stdout).toMatch(/pgbouncer\s+\S+\s+up/);
    expect(status.stdout).toMatch(/redis\s+\S+\s+up/);

    const pidsBefore = [...status.stdout.matchAll(/pid=(\d+)/g)].map((m) => m[1]);
    const again = await stackCommand('up');
    expect(again.stdout + again.stderr).toContain('nothing to do');
    const pidsAfter = [...(await stackCommand('status')).stdout.matchAll(/pid=(\d+)/g)].map(
      (m) => m[1],
    );
    expect(pidsAfter).toEqual(pidsBefore);
  });

  it('recovers the primary after `kill primary` + `start primary`, with the replica streaming again', async () => {
    const env = await stackEnv();
    const db = stackDb(env);
    await stack('kill', 'primary');
    await expect(stackCommand('status')).rejects.toMatchObject({ code: 3 });
    await stack('start', 'primary');

    const client = new pg.Client({
      host: db.host,
      port: db.primaryPort,
      user: db.user,
      password: db.password,
      database: 'postgres',
    });
    await client.connect();
    try {
      const deadline = Date.now() + 30_000;
      let streaming = 0;
      while (Date.now() < deadline) {
        const res = await client.query(
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`,
        );
        streaming = (res.rows[0] as { n: number }).n;
        if (streaming > 0) {
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(streaming).toBe(1);
      expect((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0]).toEqual({ r: false });
    } finally {
      await client.end();
    }
  });
});
