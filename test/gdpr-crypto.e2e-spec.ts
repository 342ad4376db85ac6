import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import request from 'supertest';
import {
  discoverTopology,
  revertLastMigrationLocked,
  runMigrationsLocked,
} from '../src/database/boot.js';
import { DataKeyDestroyedError } from '../src/security/crypto/data-keys.js';
import { PersonalDataCipher } from '../src/security/crypto/personal-data-cipher.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  ownerQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { KmsServer, startKmsServer } from './support/kms-server.js';
import { REPO_ROOT, stackEnv } from './support/stack.js';

const run = promisify(execFile);

type Row = Record<string, unknown>;

describe('GDPR crypto: AWS KMS provider and the encrypting migration (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  const databases: string[] = [];
  const apps: NestFastifyApplication[] = [];

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
  });

  afterAll(async () => {
    for (const app of apps) {
      await app.close();
    }
    for (const d of databases) {
      await dropTestDatabase(db, d);
    }
  });

  const sql = async (database: string, text: string, params: unknown[] = []): Promise<Row[]> =>
    (await adminQuery(db, db.primaryPort, database, text, params)).rows as Row[];
  /** As the schema's owner: reverted migrations take the service's rights with them. */
  const ownerSql = async (database: string, text: string, params: unknown[] = []): Promise<Row[]> =>
    (await ownerQuery(db, db.primaryPort, database, text, params)).rows as Row[];

  describe('with the AWS KMS provider (a local endpoint speaking the KMS JSON protocol)', () => {
    let kms: KmsServer;
    let database: string;
    const awsEnv = (): Record<string, string> => ({
      KMS_PROVIDER: 'aws',
      KMS_AWS_KEY_ID: kms.keyId,
      KMS_AWS_ENDPOINT: kms.url,
      KMS_AWS_REGION: 'us-east-1',
      PII_HASH_KEY: Buffer.alloc(32, 7).toString('base64'),
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });

    beforeAll(async () => {
      kms = await startKmsServer();
      process.env.AWS_ACCESS_KEY_ID = 'test';
      process.env.AWS_SECRET_ACCESS_KEY = 'test';
      database = await createTestDatabase(db, 'awskms');
      databases.push(database);
    });

    afterAll(async () => {
      await kms?.close();
    });

    it('wraps data keys with GenerateDataKey, unwraps with Decrypt after a restart, and shreds on erasure', async () => {
      const first = await bootApp(testConfig(env, database, awsEnv()));
      apps.push(first);
      const created = await request(first.getHttpServer())
        .post('/v1/users')
        .set(bearer(KEYS.all))
        .send({ email: 'kms@example.com', displayName: 'Kms User' })
        .expect(201);
      const id = (created.body as { id: string }).id;
      expect(kms.calls.GenerateDataKey ?? 0).toBeGreaterThanOrEqual(1);
      const [row] = await sql(database, `SELECT email_enc FROM users WHERE id = $1`, [id]);
      const sealed = Buffer.from(row.email_enc as Buffer);
      await first.close();
      apps.pop();

      // A new process has no key in memory: it must ask the KMS to unwrap.
      const decryptsBefore = kms.calls.Decrypt ?? 0;
      const second = await bootApp(testConfig(env, database, awsEnv()));
      apps.push(second);
      const got = await request(second.getHttpServer())
        .get(`/v1/users/${id}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(200);
      expect(got.body).toMatchObject({ email: 'kms@example.com', displayName: 'Kms User' });
      expect((kms.calls.Decrypt ?? 0) - decryptsBefore).toBeGreaterThanOrEqual(1);

      // KMS unreachable while a key must be unwrapped: 503, not 500; then it recovers.
      second.get(PersonalDataCipher).forget(id);
      kms.failNext(3); // the SDK makes 3 attempts
      const down = await request(second.getHttpServer())
        .get(`/v1/users/${id}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(503);
      expect(JSON.stringify(down.body)).not.toContain('kms@example.com');
      await request(second.getHttpServer())
        .get(`/v1/users/${id}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(200);

      const erase = await request(second.getHttpServer())
        .post(`/v1/users/${id}/erasure`)
        .set(bearer(KEYS.all))
        .expect(202);
      const deadline = Date.now() + 10_000;
      let body: { status?: string; verified?: boolean } = {};
      while (Date.now() < deadline && body.status !== 'completed') {
        await sleep(50);
        const res = await request(second.getHttpServer())
          .get(`/v1/erasure-requests/${String(erase.body.id)}`)
          .set(bearer(KEYS.all));
        body = res.body as typeof body;
      }
      expect(body).toMatchObject({ status: 'completed', verified: true });
      await expect(second.get(PersonalDataCipher).open(id, 'email', sealed)).rejects.toBeInstanceOf(
        DataKeyDestroyedError,
      );
    });
  });

  it('key rotation (npm run kms:rotate): a new local master key version, every data key re-wrapped, data still readable', async () => {
    const database = await createTestDatabase(db, 'rotate');
    databases.push(database);
    const dir = await mkdtemp(join(tmpdir(), 'dbu-kms-'));
    const keyFile = join(dir, 'keys.json');
    const overrides = { KMS_LOCAL_KEY_FILE: keyFile };
    const app = await bootApp(testConfig(env, database, overrides));
    apps.push(app);
    const created = await request(app.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'rotate@example.com', displayName: 'Rot Ate' })
      .expect(201);
    const id = (created.body as { id: string }).id;
    await app.close();
    apps.pop();
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const keystoreDb = `${database}_keystore`;
    const before = await sql(keystoreDb, `SELECT key_id FROM user_data_keys`);
    expect(before).toEqual([{ key_id: 'local:v1' }]);

    const out = await run(
      process.execPath,
      [join(REPO_ROOT, 'dist/src/security/crypto/kms-rotate.cli.js')],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          ...env,
          NODE_ENV: 'test',
          DB_NAME: database,
          LOG_LEVEL: 'info',
          ...overrides,
        },
      },
    );
    expect(out.stdout).toContain('local master key rotated');
    const file = JSON.parse(await readFile(keyFile, 'utf8')) as {
      current: string;
      keys: Record<string, string>;
    };
    expect(file.current).toBe('v2');
    expect(Object.keys(file.keys).sort()).toEqual(['v1', 'v2']);
    expect(await sql(keystoreDb, `SELECT key_id FROM user_data_keys`)).toEqual([
      { key_id: 'local:v2' },
    ]);
    expect(await sql(database, `SELECT key_id FROM audit_data_keys`)).toEqual([
      { key_id: 'local:v2' },
    ]);
    // No stray key material in the output.
    for (const k of Object.values(file.keys)) {
      expect(out.stdout + out.stderr).not.toContain(k);
    }

    const after = await bootApp(testConfig(env, database, overrides));
    apps.push(after);
    const user = await request(after.getHttpServer())
      .get(`/v1/users/${id}`)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(user.body.email).toBe('rotate@example.com');
    const audit = await request(after.getHttpServer())
      .get('/v1/audit-logs')
      .query({ subjectId: id })
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(audit.body.items[0].details).toEqual({ fields: ['email', 'displayName'] });
    await rm(dir, { recursive: true, force: true });
  });

  it('the migration encrypts rows that already exist, and its down() restores them in clear', async () => {
    const database = await createTestDatabase(db, 'encmig');
    databases.push(database);
    const config = testConfig(env, database);
    const app = await bootApp(config);
    apps.push(app);
    const created = await request(app.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: 'Mig@Example.com', displayName: 'Mig Rant' })
      .expect(201);
    const id = (created.body as { id: string }).id;
    await request(app.getHttpServer())
      .put(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { diet: 'vegan' } })
      .expect(200);
    await request(app.getHttpServer())
      .put(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({ likedCuisines: ['greek'], likedIngredients: ['feta'], dislikes: [] })
      .expect(200);
    await app.close();
    apps.pop();

    const topology = await discoverTopology(config);
    // Down to the schema before encryption: the rows come back in clear.
    const applied = async (): Promise<string[]> =>
      (await ownerSql(database, 'SELECT name FROM typeorm_migrations ORDER BY id')).map((r) =>
        String(r.name),
      );
    while ((await applied()).includes('EncryptPersonalData1795651207000')) {
      await revertLastMigrationLocked(config, topology);
    }
    const [clear] = await ownerSql(
      database,
      `SELECT u.email, u.display_name, p.data, t.liked_cuisines FROM users u
         JOIN user_profiles p ON p.user_id = u.id JOIN taste_profiles t ON t.user_id = u.id WHERE u.id = $1`,
      [id],
    );
    expect(clear).toEqual({
      email: 'Mig@Example.com',
      display_name: 'Mig Rant',
      data: { diet: 'vegan' },
      liked_cuisines: ['greek'],
    });

    // Up again: the existing rows are encrypted, the clear columns dropped.
    const ran = await runMigrationsLocked(config, topology);
    expect(ran[0]).toBe('EncryptPersonalData1795651207000');
    const cols = await ownerSql(
      database,
      `SELECT column_name FROM information_schema.columns WHERE table_name IN ('users', 'user_profiles', 'taste_profiles')`,
    );
    const names = cols.map((c) => c.column_name);
    for (const gone of ['email', 'display_name', 'data', 'liked_cuisines']) {
      expect(names).not.toContain(gone);
    }
    const raw = (await ownerSql(database, `SELECT * FROM users`))
      .flatMap((r) => Object.values(r))
      .map((v) => (Buffer.isBuffer(v) ? v.toString('latin1') : String(v)))
      .join('|');
    expect(raw).not.toContain('Mig@Example.com');
    expect(raw).not.toContain('Mig Rant');

    const again = await bootApp(config);
    apps.push(again);
    const user = await request(again.getHttpServer())
      .get(`/v1/users/${id}`)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(user.body).toMatchObject({ email: 'Mig@Example.com', displayName: 'Mig Rant' });
    const taste = await request(again.getHttpServer())
      .get(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .set('x-consistency', 'strong')
      .expect(200);
    expect(taste.body.likedIngredients).toEqual(['feta']);
  });
});
