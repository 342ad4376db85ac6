import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createClient, RedisClientType } from '@keyv/redis';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { sslOption } from '../src/database/pg-direct.js';
import { API_KEYS_JSON, bootApp, testConfig } from './support/app.js';
import {
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
  testSsl,
} from './support/databases.js';
import { freePort } from './support/ports.js';
import { redisClient } from './support/redis.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

/** Runs the built service with `env` until it exits (or `timeoutMs`); its whole output. */
function runService(
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** Connects, and resolves with the error the connection ended with (null: it worked). */
async function connectError(config: pg.ClientConfig): Promise<Error | null> {
  const c = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return null;
  } catch (err) {
    return err as Error;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** What a plain-text client gets from a port: every byte until the server closes it. */
function plainExchange(port: number, send: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(send));
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
    s.setTimeout(10_000, () => s.destroy());
  });
}

/**
 * A TLS endpoint that speaks just enough of PostgreSQL's protocol to start TLS (it answers
 * SSLRequest with 'S'), with `cert`: what a client decides about the certificate is all
 * it sees; after the handshake the server hangs up.
 */
async function fakePostgresTls(
  key: string,
  cert: string,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.once('data', () => {
      socket.write('S');
      const secure = new tls.TLSSocket(socket, { isServer: true, key, cert });
      secure.on('error', () => undefined);
      secure.on('secure', () => secure.destroy());
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('transport security on the real stack (TLS on every hop)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let dir: string;
  let database: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'tls');
    dir = mkdtempSync(join(tmpdir(), 'dbu-tls-'));
  });

  afterAll(async () => {
    await dropTestDatabase(db, database);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The service's settings on the stack (the stack's TLS and generated passwords). */
  let port: number;
  beforeEach(async () => {
    port = await freePort();
  });
  const serviceEnv = (overrides: Record<string, string> = {}): Record<string, string> => ({
    ...env,
    NODE_ENV: 'test',
    DB_NAME: database,
    API_KEYS: API_KEYS_JSON,
    DB_MIGRATIONS_RUN: 'false',
    JOBS_ENABLED: 'false',
    DB_BOOT_TIMEOUT_MS: '3000',
    DB_CONNECT_TIMEOUT_MS: '3000',
    PORT: String(port),
    ...overrides,
  });

  it('refuses connections without TLS: both PostgreSQL nodes, PgBouncer and Redis', async () => {
    for (const port of [db.primaryPort, db.replicaPort]) {
      const err = await connectError({
        host: db.host,
        port,
        user: db.user,
        password: db.password,
        database,
        ssl: false,
      });
      expect(err?.message).toMatch(/no pg_hba\.conf entry for host .* no encryption/);
    }
    const pgb = await connectError({
      host: env.PGBOUNCER_HOST,
      port: Number(env.PGBOUNCER_PORT),
      user: db.user,
      password: db.password,
      database: env.PGBOUNCER_DB_RW,
      ssl: false,
    });
    expect(pgb?.message).toMatch(/SSL required/);
    // Redis has no plain port: a plain PING gets no answer, only a closed connection.
    const redisPort = Number(new URL(env.REDIS_URL).port);
    expect(await plainExchange(redisPort, 'PING\r\n')).not.toContain('+PONG');
    // With TLS, the same ports work.
    expect(
      await connectError({
        host: env.PGBOUNCER_HOST,
        port: Number(env.PGBOUNCER_PORT),
        user: db.user,
        password: db.password,
        database: env.PGBOUNCER_DB_RW,
        ssl: testSsl(env),
      }),
    ).toBeNull();
  });

  it('Redis: the default user is off, the service user may not run CONFIG or FLUSHALL', async () => {
    const anonymous = createClient({
      url: env.REDIS_URL,
      socket: { tls: true, ca: readFileSync(env.REDIS_TLS_CA, 'utf8'), reconnectStrategy: false },
    }) as RedisClientType;
    anonymous.on('error', () => undefined);
    await anonymous.connect();
    await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
    await anonymous.close();

    const service = await redisClient(env, 'service');
    try {
      expect(await service.ping()).toBe('PONG');
      expect(await service.info('server')).toContain('run_id:');
      await expect(service.configGet('maxmemory')).rejects.toThrow(/NOPERM/);
      await expect(service.flushAll()).rejects.toThrow(/NOPERM/);
    } finally {
      await service.close();
    }
  });

  it('replication streams over TLS, and every connection of a running service is TLS 1.2+', async () => {
    const replication = await superQuery(
      env,
      db.primaryPort,
      'postgres',
      `SELECT r.state, s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)`,
    );
    expect(replication.rows.length).toBeGreaterThanOrEqual(1);
    for (const row of replication.rows) {
      expect(row).toEqual({
        state: 'streaming',
        ssl: true,
        version: expect.stringMatching(/^TLSv1\.[23]$/),
      });
    }

    let app: NestFastifyApplication | null = null;
    try {
      app = await bootApp(testConfig(env, database));
      const sessions = await superQuery(
        env,
        db.primaryPort,
        'postgres',
        `SELECT a.application_name, s.ssl, s.version
           FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
          WHERE a.datname = $1 AND a.client_addr IS NOT NULL`,
        [database],
      );
      expect(sessions.rows.length).toBeGreaterThan(0);
      for (const row of sessions.rows) {
        expect({ app: row.application_name, ssl: row.ssl }).toEqual({
          app: row.application_name,
          ssl: true,
        });
        expect(row.version).toMatch(/^TLSv1\.[23]$/);
      }
    } finally {
      await app?.close();
    }
  });

  it('a service given a CA that did not sign the nodes fails at boot and says why', async () => {
    const otherCa = join(dir, 'other-ca.crt');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=another CA',
        '-keyout',
        join(dir, 'other-ca.key'),
        '-out',
        otherCa,
      ],
      { stdio: 'ignore' },
    );
    const { code, output } = await runService(serviceEnv({ DB_SSL_CA: otherCa }));
    expect(code).toBe(1);
    expect(output).toMatch(/no writable primary among/);
    expect(output).toMatch(
      /127\.0\.0\.1:\d+ \(unreachable: self-signed certificate in certificate chain\)/,
    );
  });

  it('verify-full refuses a certificate for another host name; verify-ca accepts it', async () => {
    // a certificate of the stack's own CA, for a name the nodes do not have
    const key = join(dir, 'other.key');
    const csr = join(dir, 'other.csr');
    const cert = join(dir, 'other.crt');
    const ext = join(dir, 'other.ext');
    writeFileSync(ext, 'subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n');
    execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=other.example',
        '-keyout',
        key,
        '-out',
        csr,
      ],
      { stdio: 'ignore' },
    );
    const caKey = join(env.STACK_DIR, 'tls', 'ca.key');
    execFileSync(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        env.DB_SSL_CA,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-CAserial',
        join(dir, 'ca.srl'),
        '-days',
        '2',
        '-extfile',
        ext,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    const fake = await fakePostgresTls(readFileSync(key, 'utf8'), readFileSync(cert, 'utf8'));
    try {
      const ca = readFileSync(env.DB_SSL_CA, 'utf8');
      const target = {
        host: '127.0.0.1',
        port: fake.port,
        user: 'x',
        password: 'y',
        database: 'z',
      };
      const full = await connectError({
        ...target,
        ssl: sslOption({ mode: 'verify-full', ca, caFile: null }),
      });
      expect(full?.message).toMatch(/Hostname\/IP does not match certificate's altnames/);
      // verify-ca checks the chain only: the handshake succeeds, then the fake hangs up
      const chainOnly = await connectError({
        ...target,
        ssl: sslOption({ mode: 'verify-ca', ca, caFile: null }),
      });
      expect(chainOnly).not.toBeNull();
      expect(chainOnly?.message).not.toMatch(/certificate|altnames/i);

      const { code, output } = await runService(serviceEnv({ DB_NODES: `127.0.0.1:${fake.port}` }));
      expect(code).toBe(1);
      expect(output).toContain(
        `127.0.0.1:${fake.port} (unreachable: Hostname/IP does not match certificate's altnames`,
      );
    } finally {
      await fake.close();
    }
  });

  it('production refuses clear-text transport and the development keys, naming each setting', async () => {
    const production = {
      NODE_ENV: 'production',
      DB_MIGRATIONS_RUN: 'false',
      PII_HASH_KEY: Buffer.alloc(32, 3).toString('base64'),
    };
    const dev = JSON.stringify([{ id: 'dev', hash: 'a'.repeat(64), scopes: ['ops:read'] }]);
    const first = await runService(
      serviceEnv({
        ...production,
        DB_SSL: 'disable',
        REDIS_URL: 'redis://127.0.0.1:6379',
        API_KEYS: dev,
        KMS_LOCAL_KEY_FILE: '.data/kms/local-keys.json',
      }),
    );
    expect(first.code).toBe(1);
    expect(first.output).toContain('Invalid configuration');
    for (const setting of [
      'DB_SSL: disable',
      'REDIS_URL: a plain redis://',
      'API_KEYS:',
      'KMS_LOCAL_KEY_FILE:',
    ]) {
      expect(first.output).toContain(setting);
    }
    const second = await runService(
      serviceEnv({
        ...production,
        DB_SSL: 'require',
        DB_SSL_CA: '',
        KMS_LOCAL_KEYS: `v1:${Buffer.alloc(32, 1).toString('base64')}`,
      }),
    );
    expect(second.code).toBe(1);
    expect(second.output).toContain('DB_SSL: require without DB_SSL_CA');
    // no secret of the stack in either answer
    for (const secret of [env.DB_PASSWORD, env.REDIS_PASSWORD, env.PGBOUNCER_ADMIN_PASSWORD]) {
      expect(first.output + second.output).not.toContain(secret);
    }
  });

  it('ALLOW_INSECURE_TRANSPORT=true lets production boot with DB_SSL=disable, warns, and the stack still refuses it', async () => {
    const { code, output } = await runService(
      serviceEnv({
        NODE_ENV: 'production',
        DB_MIGRATIONS_RUN: 'false',
        PII_HASH_KEY: Buffer.alloc(32, 3).toString('base64'),
        KMS_LOCAL_KEYS: `v1:${Buffer.alloc(32, 1).toString('base64')}`,
        DB_SSL: 'disable',
        ALLOW_INSECURE_TRANSPORT: 'true',
      }),
    );
    expect(code).toBe(1);
    expect(output).toMatch(
      /"level":"warn".*"setting":"DB_SSL".*"msg":"insecure transport: DB_SSL: disable/,
    );
    expect(output).toMatch(/no pg_hba\.conf entry for host .* no encryption/);
  });
});
