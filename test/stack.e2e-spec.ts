import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { stackDb } from './support/databases.js';
import { REPO_ROOT, stack, stackCommand, stackEnv } from './support/stack.js';

const runFile = promisify(execFile);

/** Connects a socket whose local port is `port` (an outgoing connection holding the port). */
async function holdPortWithOutgoingConnection(port: number): Promise<() => Promise<void>> {
  const server = net.createServer((s) => s.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: target } = server.address() as net.AddressInfo;
  const socket = net.connect({
    host: '127.0.0.1',
    port: target,
    localAddress: '127.0.0.1',
    localPort: port,
  });
  await new Promise<void>((resolve, reject) =>
    socket.once('connect', resolve).once('error', reject),
  );
  return async () => {
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

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

  it("uses no default port inside the kernel's ephemeral range", async () => {
    const [lo, hi] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8'))
      .trim()
      .split(/\s+/)
      .map(Number);
    const env = await stackEnv();
    const ports = [
      ...env.DB_NODES.split(',').map((n) => Number(n.split(':')[1])),
      Number(env.PGBOUNCER_PORT),
      Number(new URL(env.REDIS_URL).port),
    ];
    expect(ports).toHaveLength(4);
    for (const port of ports) {
      expect(port < lo || port > hi).toBe(true);
    }
  });

  it('names the port and what holds it when a node cannot bind', async () => {
    const dir = join(tmpdir(), `dbu-stack-port-${process.pid}`);
    const release = await holdPortWithOutgoingConnection(24991);
    try {
      const failed = await runFile(
        'bash',
        [join(REPO_ROOT, 'docker', 'stack.sh'), 'start', 'redis'],
        {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            STACK_DIR: dir,
            STACK_PG_PRIMARY_PORT: '24990',
            STACK_PG_REPLICA_PORT: '24992',
            STACK_PGBOUNCER_PORT: '24993',
            STACK_REDIS_PORT: '24991',
          },
        },
      ).then(
        () => null,
        (err: { code: number; stderr: string }) => err,
      );
      expect(failed).not.toBeNull();
      expect(failed!.code).toBe(1);
      expect(failed!.stderr).toMatch(
        /redis cannot bind 127\.0\.0\.1:24991: port 24991 is in use: ESTAB/,
      );
      expect(failed!.stderr).toContain('STACK_REDIS_PORT');
    } finally {
      await release();
      await rm(dir, { recursive: true, force: true });
    }
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
      ssl: db.ssl,
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
