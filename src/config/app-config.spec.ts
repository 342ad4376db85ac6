import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigValidationError, loadConfig } from './app-config.js';

/** A production environment that passes: TLS verified, keys of its own. */
const PRODUCTION = {
  NODE_ENV: 'production',
  DB_PASSWORD: 'x',
  DB_MIGRATIONS_RUN: 'false',
  KMS_LOCAL_KEYS: `v1:${Buffer.alloc(32, 7).toString('base64')}`,
  PII_HASH_KEY: Buffer.alloc(32, 9).toString('base64'),
};

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigValidationError) {
      return err.problems;
    }
    throw err;
  }
  return [];
}

describe(loadConfig.name, () => {
  it('uses the spec values as defaults', () => {
    const c = loadConfig({});
    expect(c.database.pool).toEqual({ default: 20, min: 5, max: 50, reserve: 5 });
    expect(c.database.health).toEqual({
      intervalMs: 30_000,
      timeoutMs: 10_000,
      unhealthyThreshold: 3,
      healthyThreshold: 2,
    });
    expect(c.database.connectTimeoutMs).toBe(30_000);
    expect(c.database.nodes).toEqual([
      { host: '127.0.0.1', port: 25432 },
      { host: '127.0.0.1', port: 25433 },
    ]);
    expect(c.pgbouncer).toBeNull();
  });

  it('applies environment overrides with types', () => {
    const c = loadConfig({
      DB_POOL_MAX: '80',
      DB_MIGRATIONS_RUN: 'false',
      PGBOUNCER_HOST: 'pgb',
      DB_NODES: 'a:1, b:2',
    });
    expect(c.database.pool.max).toBe(80);
    expect(c.database.migrationsRun).toBe(false);
    expect(c.pgbouncer?.host).toBe('pgb');
    expect(c.database.nodes).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ]);
  });

  it('reads BACKUP_OS_USER (optional, no default)', () => {
    expect(loadConfig({}).backup.osUser).toBeUndefined();
    expect(loadConfig({ BACKUP_OS_USER: 'postgres' }).backup.osUser).toBe('postgres');
  });

  it('names every invalid variable in one error', () => {
    let error: unknown;
    try {
      loadConfig({
        DB_POOL_MAX: '-1',
        REDIS_URL: 'http://x',
        DB_NODES: 'nope',
        API_KEYS: '{}',
        LOG_LEVEL: 'loud',
        DB_SSL: 'maybe',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigValidationError);
    const problems = (error as ConfigValidationError).problems.join('\n');
    for (const name of [
      'DB_POOL_MAX',
      'REDIS_URL',
      'DB_NODES',
      'API_KEYS',
      'LOG_LEVEL',
      'DB_SSL',
    ]) {
      expect(problems).toContain(name);
    }
  });

  it.each([
    [{ DB_POOL_MIN: '30' }, 'DB_POOL_MIN'],
    [{ DB_POOL_DEFAULT: '60' }, 'DB_POOL_DEFAULT'],
    [{ DB_ROUTE_VIA_PGBOUNCER: 'true' }, 'DB_ROUTE_VIA_PGBOUNCER'],
    [{ NODE_ENV: 'production' }, 'DB_PASSWORD'],
    [{ NODE_ENV: 'production', DB_PASSWORD: 'x' }, 'DB_MIGRATION_PASSWORD'],
    [{ DB_MIGRATION_USER: 'app' }, 'DB_MIGRATION_USER'],
    [{ AUDIT_RETENTION_YEARS: '6' }, 'AUDIT_RETENTION_YEARS'],
    // pgvector refuses ef_construction below 2 × m: the rebuild job would fail
    [{ VECTOR_EF_CONSTRUCTION: '16' }, 'VECTOR_EF_CONSTRUCTION'],
    [{ VECTOR_STORAGE: 'float16' }, 'VECTOR_STORAGE'],
  ])('rejects inconsistent settings %j', (env, name) => {
    expect(() => loadConfig(env)).toThrow(name);
  });

  it('never echoes a value in its message', () => {
    expect(() => loadConfig({ API_KEYS: '[{"id":"a","hash":"hunter2","scopes":[]}]' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') }),
    );
  });

  it('rejects unknown scopes and duplicate key ids', () => {
    const hash = 'a'.repeat(64);
    expect(() =>
      loadConfig({ API_KEYS: JSON.stringify([{ id: 'a', hash, scopes: ['root'] }]) }),
    ).toThrow('API_KEYS');
    expect(() =>
      loadConfig({
        API_KEYS: JSON.stringify([
          { id: 'a', hash, scopes: [] },
          { id: 'a', hash, scopes: [] },
        ]),
      }),
    ).toThrow('API_KEYS');
  });

  describe('transport security', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbu-config-'));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');

    it('defaults to verify-full and rediss:// everywhere, and a production that keeps them boots', () => {
      const c = loadConfig({});
      expect(c.database.ssl).toEqual({ mode: 'verify-full', caFile: null, ca: null });
      expect(c.redis.url.startsWith('rediss://')).toBe(true);
      const p = loadConfig(PRODUCTION);
      expect(p.database.ssl.mode).toBe('verify-full');
      expect(p.insecureTransport.reasons).toEqual([]);
    });

    it('reads DB_SSL_CA and REDIS_TLS_CA at boot, and names the setting of a bad file', () => {
      const c = loadConfig({ DB_SSL_CA: ca, REDIS_TLS_CA: ca, PGBOUNCER_HOST: 'pgb' });
      expect(c.database.ssl.ca).toContain('BEGIN CERTIFICATE');
      expect(c.database.ssl.caFile).toBe(ca);
      expect(c.pgbouncer?.ssl).toBe(c.database.ssl);
      expect(c.redis.tlsCa).toContain('BEGIN CERTIFICATE');
      expect(problemsOf({ DB_SSL_CA: join(dir, 'missing.pem') })).toEqual([
        expect.stringMatching(/^DB_SSL_CA: cannot read .*missing\.pem \(ENOENT\)$/),
      ]);
      expect(problemsOf({ REDIS_TLS_CA: notPem })).toEqual([
        expect.stringMatching(/^REDIS_TLS_CA: .* holds no PEM certificate$/),
      ]);
    });

    it.each([
      [{ DB_SSL: 'disable' }, 'DB_SSL: disable'],
      [{ DB_SSL: 'require' }, 'DB_SSL: require without DB_SSL_CA'],
      [{ REDIS_URL: 'redis://cache:6379' }, 'REDIS_URL: a plain redis:// URL'],
    ])('production refuses %j unless ALLOW_INSECURE_TRANSPORT=true', (env, problem) => {
      const refused = problemsOf({ ...PRODUCTION, ...env });
      expect(refused).toHaveLength(1);
      expect(refused[0]).toContain(problem);
      expect(refused[0]).toContain('ALLOW_INSECURE_TRANSPORT=true');
      const allowed = loadConfig({ ...PRODUCTION, ...env, ALLOW_INSECURE_TRANSPORT: 'true' });
      expect(allowed.insecureTransport.allowed).toBe(true);
      expect(allowed.insecureTransport.reasons).toEqual([expect.stringContaining(problem)]);
    });

    it('production accepts require with a CA, and verify-ca', () => {
      expect(problemsOf({ ...PRODUCTION, DB_SSL: 'require', DB_SSL_CA: ca })).toEqual([]);
      expect(problemsOf({ ...PRODUCTION, DB_SSL: 'verify-ca', DB_SSL_CA: ca })).toEqual([]);
    });

    it('development only reports clear-text settings (the boot logs them as warnings)', () => {
      const c = loadConfig({ DB_SSL: 'disable', REDIS_URL: 'redis://127.0.0.1:6379' });
      expect(c.insecureTransport.reasons.map((r) => r.split(':')[0])).toEqual([
        'DB_SSL',
        'REDIS_URL',
      ]);
    });

    it('production refuses the development KMS key file and the development API key', () => {
      const withoutKeys: Record<string, string> = { ...PRODUCTION };
      delete withoutKeys.KMS_LOCAL_KEYS;
      expect(problemsOf(withoutKeys)).toEqual([
        expect.stringMatching(
          /^KMS_LOCAL_KEY_FILE: \.data\/kms\/local-keys\.json is the development key file/,
        ),
      ]);
      expect(problemsOf({ ...withoutKeys, KMS_LOCAL_KEY_FILE: '/run/secrets/kms.json' })).toEqual(
        [],
      );
      const dev = JSON.stringify([{ id: 'dev', hash: 'a'.repeat(64), scopes: ['ops:read'] }]);
      expect(problemsOf({ ...PRODUCTION, API_KEYS: dev })).toEqual([
        expect.stringMatching(/^API_KEYS: the key 'dev' is the development key/),
      ]);
      expect(problemsOf({ API_KEYS: dev })).toEqual([]);
    });
  });
});
