import { ConfigValidationError, loadConfig } from './app-config.js';

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
});
