import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { unzipSync, strFromU8 } from 'fflate';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import type { AppConfig } from '../src/config/app-config.js';
import { TieredCacheService } from '../src/cache/tiered-cache.service.js';
import { ErasureService } from '../src/gdpr/erasure.service.js';
import { ExportPurgeJob } from '../src/gdpr/export-purge.job.js';
import { DataKeyDestroyedError } from '../src/security/crypto/data-keys.js';
import { DecryptionError } from '../src/security/crypto/kms.js';
import { PersonalDataCipher } from '../src/security/crypto/personal-data-cipher.js';
import { Keystore } from '../src/security/keystore/keystore.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { redisClient } from './support/redis.js';
import { stackEnv } from './support/stack.js';
import { axis, recipeBody } from './support/vectors.js';

type Body = Record<string, unknown>;
const strong = { 'x-consistency': 'strong' };
const DAY_MS = 86_400_000;

describe('GDPR: encryption at rest, export, verified erasure (real stack)', () => {
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let config: AppConfig;
  let a: NestFastifyApplication;
  let b: NestFastifyApplication;
  let redis: Awaited<ReturnType<typeof redisClient>>;
  let exportDir: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'gdpr');
    exportDir = join(env.STACK_DIR ?? '.stack', `exports-${database}`);
    config = testConfig(env, database, { GDPR_EXPORT_DIR: exportDir });
    a = await bootApp(config);
    b = await bootApp(config);
    redis = await redisClient(env);
    await request(a.getHttpServer())
      .post('/v1/consent-policies')
      .set(bearer(KEYS.all))
      .send({ purpose: 'personalization', text: 'We use your taste profile to suggest recipes.' })
      .expect(201);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.close();
    await dropTestDatabase(db, database);
    await rm(exportDir, { recursive: true, force: true });
  });

  const sql = async (text: string, params: unknown[] = []): Promise<Body[]> =>
    (await adminQuery(db, db.primaryPort, database, text, params)).rows as Body[];

  /** Rows as text, bytea decoded (a JSON of Buffers would hide any clear bytes). */
  const asText = (rows: unknown): string =>
    JSON.stringify(rows, (_k, v: unknown) =>
      v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer'
        ? Buffer.from((v as { data: number[] }).data).toString('latin1')
        : v,
    );

  /** A user with every kind of personal data the service holds. */
  async function richUser(marker: string): Promise<{ id: string; email: string; recipe: string }> {
    const email = `${marker}@example.com`;
    const http = a.getHttpServer();
    const user = await request(http)
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email, displayName: `Name ${marker}` })
      .expect(201);
    const id = (user.body as { id: string }).id;
    await request(http)
      .put(`/v1/users/${id}/profile`)
      .set(bearer(KEYS.all))
      .send({ data: { city: `City-${marker}`, note: 'likes "quotes", commas\nand lines' } })
      .expect(200);
    await request(http)
      .put(`/v1/users/${id}/taste-profile`)
      .set(bearer(KEYS.all))
      .send({ likedCuisines: ['thai'], likedIngredients: [`basil-${marker}`], dislikes: ['okra'] })
      .expect(200);
    await request(http)
      .put(`/v1/users/${id}/consents/personalization`)
      .set(bearer(KEYS.all))
      .send({ granted: true, policyVersion: 1, source: 'signup' })
      .expect(200);
    const recipe = await request(http)
      .post('/v1/recipes')
      .set(bearer(KEYS.all))
      .send(recipeBody({ title: `Soup of ${marker}`, authorId: id, embedding: axis(3) }))
      .expect(201);
    return { id, email, recipe: (recipe.body as { id: string }).id };
  }

  async function waitFor<T extends Body>(
    path: string,
    done: (body: T) => boolean,
    timeoutMs = 15_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await request(a.getHttpServer()).get(path).set(bearer(KEYS.all)).set(strong);
      const body = res.body as T;
      if (res.status === 200 && done(body)) {
        return body;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting on ${path}: ${JSON.stringify(body)}`);
      }
      await sleep(50);
    }
  }

  async function exportOf(userId: string, format: 'json' | 'csv'): Promise<Body> {
    const res = await request(a.getHttpServer())
      .post(`/v1/users/${userId}/exports`)
      .set(bearer(KEYS.all))
      .send({ format })
      .expect(202);
    expect(res.headers.location).toBe(`/v1/exports/${res.body.id}`);
    return waitFor(res.headers.location, (e) => e.status === 'ready');
  }

  const download = (url: string) =>
    request(a.getHttpServer())
      .get(url)
      .set(bearer(KEYS.all))
      .buffer(true)
      .parse((res, cb) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => cb(null, Buffer.concat(chunks)));
      });

  describe('encryption at rest', () => {
    it('stores no personal field in clear; the email lookup column is a keyed hash', async () => {
      const u = await richUser('atrest');
      const raw = asText(
        await sql(
          `SELECT u.*, p.*, t.prefs_enc FROM users u
             JOIN user_profiles p ON p.user_id = u.id JOIN taste_profiles t ON t.user_id = u.id
            WHERE u.id = $1`,
          [u.id],
        ),
      );
      for (const clear of ['atrest@example.com', 'Name atrest', 'City-atrest', 'basil-atrest']) {
        expect(raw).not.toContain(clear);
      }
      const cols = await sql(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1`,
      );
      expect(cols.map((c) => c.column_name)).not.toContain('email');
      // Uniqueness still holds through the keyed hash, whatever the case.
      await request(a.getHttpServer())
        .post('/v1/users')
        .set(bearer(KEYS.all))
        .send({ email: 'AtRest@Example.com', displayName: 'dup' })
        .expect(409);
    });

    it('a ciphertext with a flipped bit fails to decrypt (GCM)', async () => {
      const u = await richUser('bitflip');
      const [row] = await sql(`SELECT email_enc FROM users WHERE id = $1`, [u.id]);
      const sealed = Buffer.from(row.email_enc as Buffer);
      const cipher = a.get(PersonalDataCipher);
      await expect(cipher.open(u.id, 'email', sealed)).resolves.toBe(u.email);
      for (const at of [1, 14, sealed.length - 1]) {
        const bad = Buffer.from(sealed);
        bad[at] ^= 0x01;
        await expect(cipher.open(u.id, 'email', bad)).rejects.toBeInstanceOf(DecryptionError);
      }
      // Another user's or another field's context does not open it either.
      await expect(cipher.open(u.id, 'display_name', sealed)).rejects.toBeInstanceOf(
        DecryptionError,
      );
    });
  });

  describe('export', () => {
    it('JSON holds every kind of the user data; the stored file is not plaintext; the token works once', async () => {
      const u = await richUser('jsonexp');
      const ready = await exportOf(u.id, 'json');
      expect(ready.sha256).toMatch(/^[0-9a-f]{64}$/);
      const url = ready.downloadUrl as string;
      expect(url).toMatch(/\/download\?token=/);

      const res = await download(url).expect(200);
      const body = res.body as Buffer;
      expect(res.headers['content-type']).toContain('application/json');
      expect(createHash('sha256').update(body).digest('hex')).toBe(ready.sha256);
      expect(res.headers['x-content-sha256']).toBe(ready.sha256);
      const doc = JSON.parse(body.toString('utf8')) as {
        userId: string;
        data: Record<string, Body[]>;
      };
      expect(doc.userId).toBe(u.id);
      expect(doc.data.user[0].email).toBe(u.email);
      expect(doc.data.profile[0].data).toMatchObject({ city: 'City-jsonexp' });
      expect(doc.data.taste_profile[0].likedIngredients).toEqual(['basil-jsonexp']);
      expect(doc.data.consents[0]).toMatchObject({ purpose: 'personalization', granted: true });
      expect(doc.data.authored_recipes.map((r) => r.id)).toEqual([u.recipe]);
      expect(doc.data.exports.length).toBe(1);
      const actions = doc.data.audit_entries.map(
        (e) => `${String(e.eventType)}/${String(e.action)}`,
      );
      expect(actions).toEqual(
        expect.arrayContaining([
          'data_modifications/create',
          'consent_changes/grant',
          'export_requests/requested',
        ]),
      );

      // Single use: the same URL again is refused; a new GET issues a new token.
      await download(url).expect(403);
      const again = await waitFor(`/v1/exports/${String(ready.id)}`, (e) => e.status === 'ready');
      expect(again.downloadUrl).not.toBe(url);

      // Encrypted at rest: no clear value in the stored file.
      const stored = await readFile(join(exportDir, `${String(ready.id)}.enc`));
      expect(stored.length).toBeGreaterThan(body.length - 1);
      expect(stored.includes(Buffer.from('jsonexp'))).toBe(false);
      expect(stored.includes(Buffer.from('"email"'))).toBe(false);
    });

    it('an expired token is refused', async () => {
      const u = await richUser('expired');
      const ready = await exportOf(u.id, 'json');
      await sql(
        `UPDATE gdpr_exports SET token_expires_at = now() - interval '1 second' WHERE id = $1`,
        [ready.id],
      );
      const res = await download(ready.downloadUrl as string).expect(403);
      expect(JSON.stringify(res.body)).not.toContain('expired@');
    });

    it('CSV is a zip of one CSV per data kind plus a manifest', async () => {
      const u = await richUser('csvexp');
      const ready = await exportOf(u.id, 'csv');
      const res = await download(ready.downloadUrl as string).expect(200);
      expect(res.headers['content-type']).toContain('application/zip');
      const files = unzipSync(new Uint8Array(res.body as Buffer));
      expect(Object.keys(files).sort()).toEqual(
        [
          'audit_entries.csv',
          'authored_recipes.csv',
          'consents.csv',
          'exports.csv',
          'manifest.json',
          'profile.csv',
          'taste_profile.csv',
          'user.csv',
        ].sort(),
      );
      const userCsv = strFromU8(files['user.csv']);
      expect(userCsv.split('\r\n')[0]).toBe('id,email,displayName,createdAt');
      expect(userCsv).toContain(`${u.id},csvexp@example.com,Name csvexp,`);
      // Nested values are JSON text, quoted as RFC 4180 asks.
      expect(strFromU8(files['profile.csv'])).toContain('"{""city"":""City-csvexp""');
      const manifest = JSON.parse(strFromU8(files['manifest.json'])) as {
        files: Array<{ kind: string; rows: number }>;
      };
      expect(manifest.files.find((f) => f.kind === 'authored_recipes')?.rows).toBe(1);
    });

    it('the purge job deletes files past the retention, and only those', async () => {
      const u = await richUser('purge');
      const old = await exportOf(u.id, 'json');
      const fresh = await exportOf(u.id, 'csv');
      await sql(`UPDATE gdpr_exports SET expires_at = now() - interval '1 minute' WHERE id = $1`, [
        old.id,
      ]);
      const outcome = await a.get(ExportPurgeJob).purge(new Date());
      expect(outcome.purged).toBeGreaterThanOrEqual(1);
      const files = await readdir(exportDir);
      expect(files).not.toContain(`${String(old.id)}.enc`);
      expect(files).toContain(`${String(fresh.id)}.enc`);
      const gone = await waitFor(`/v1/exports/${String(old.id)}`, () => true);
      expect(gone.status).toBe('expired');
      expect(gone.downloadUrl).toBeNull();
      // 30 days on, the fresh one goes too.
      await a.get(ExportPurgeJob).purge(new Date(Date.now() + 31 * DAY_MS));
      expect(await readdir(exportDir)).not.toContain(`${String(fresh.id)}.enc`);
    });

    it('bad input: invalid format → 400 naming it; unknown user → 404; bad id → 400', async () => {
      const u = await richUser('badexp');
      const bad = await request(a.getHttpServer())
        .post(`/v1/users/${u.id}/exports`)
        .set(bearer(KEYS.all))
        .send({ format: 'xml' })
        .expect(400);
      expect(JSON.stringify(bad.body)).toContain('format');
      await request(a.getHttpServer())
        .post('/v1/users/00000000-0000-4000-8000-000000000000/exports')
        .set(bearer(KEYS.all))
        .send({ format: 'json' })
        .expect(404);
      await request(a.getHttpServer())
        .post('/v1/users/not-a-uuid/exports')
        .set(bearer(KEYS.all))
        .send({ format: 'json' })
        .expect(400);
      await request(a.getHttpServer())
        .post(`/v1/users/${u.id}/exports`)
        .set(bearer(KEYS.opsRead))
        .send({ format: 'json' })
        .expect(403);
    });
  });

  describe('erasure', () => {
    /** Rows anywhere in the schema whose any text-like column mentions `needle`. */
    async function mentions(needle: string): Promise<string[]> {
      const cols = await sql(
        `SELECT c.table_name AS t, c.column_name AS c FROM information_schema.columns c
           JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND c.data_type IN ('uuid', 'text', 'character varying', 'jsonb', 'json', 'ARRAY')`,
      );
      const found: string[] = [];
      for (const { t, c } of cols) {
        const rows = await sql(
          `SELECT count(*)::int AS n FROM "${String(t)}" WHERE "${String(c)}"::text ILIKE $1`,
          [`%${needle}%`],
        );
        if ((rows[0].n as number) > 0) {
          found.push(`${String(t)}.${String(c)}`);
        }
      }
      return found;
    }

    it('deletes every row of the user in every table, shreds the key, purges caches on two instances, and verifies', async () => {
      const u = await richUser('erased');
      const ex = await exportOf(u.id, 'json');
      // Both instances (and Redis) hold the user's cached profile (a strong read bypasses caches).
      for (const app of [a, b]) {
        await request(app.getHttpServer())
          .get(`/v1/users/${u.id}/profile`)
          .set(bearer(KEYS.all))
          .expect(200);
      }
      const tiersA = a.get(TieredCacheService);
      const tiersB = b.get(TieredCacheService);
      expect(tiersA.hasLocal('user_profiles', u.id)).toBe(true);
      expect(tiersB.hasLocal('user_profiles', u.id)).toBe(true);
      const [before] = await sql(`SELECT email_enc FROM users WHERE id = $1`, [u.id]);
      expect(await mentions(u.id)).toEqual(expect.arrayContaining(['users.id']));

      const res = await request(a.getHttpServer())
        .post(`/v1/users/${u.id}/erasure`)
        .set(bearer(KEYS.all))
        .expect(202);
      expect(res.headers.location).toBe(`/v1/erasure-requests/${res.body.id}`);
      const done = await waitFor<{ status: string; verified: boolean; report: Body }>(
        res.headers.location,
        (e) => e.status === 'completed' || e.status === 'failed',
      );
      expect(done.status).toBe('completed');
      expect(done.verified).toBe(true);
      const report = done.report as {
        ok: boolean;
        deleted: Record<string, number>;
        tables: Array<{ table: string; rowsLeft: number; declaredBy: string | null }>;
        keystore: { keysLeft: number };
        caches: { entriesLeft: number };
      };
      expect(report.ok).toBe(true);
      expect(report.tables.every((t) => t.rowsLeft === 0)).toBe(true);
      const checked = report.tables.map((t) => t.table);
      for (const t of [
        'users',
        'user_profiles',
        'taste_profiles',
        'consent_events',
        'recipes',
        'gdpr_exports',
      ]) {
        expect(checked).toContain(t);
      }
      expect(report.deleted).toMatchObject({
        user: 1,
        profile: 1,
        taste_profile: 1,
        consents: 1,
        authored_recipes: 1,
        exports: 1,
        data_keys: 1,
      });
      expect(report.keystore.keysLeft).toBe(0);
      expect(report.caches.entriesLeft).toBe(0);

      // Our own scan of every column of every table, not only the ones the code knows.
      expect(await mentions(u.id)).toEqual([]);
      expect(await mentions('erased@example.com')).toEqual([]);
      expect(await mentions('Name erased')).toEqual([]);

      // Caches: gone from Redis and from both instances' L1.
      expect(await redis.exists(tiersA.key('user_profiles', u.id))).toBe(0);
      const deadline = Date.now() + 2_000;
      while (tiersB.hasLocal('user_profiles', u.id) && Date.now() < deadline) {
        await sleep(20);
      }
      expect(tiersA.hasLocal('user_profiles', u.id)).toBe(false);
      expect(tiersB.hasLocal('user_profiles', u.id)).toBe(false);
      await request(b.getHttpServer())
        .get(`/v1/users/${u.id}/profile`)
        .set(bearer(KEYS.all))
        .expect(404);

      // The export file is gone with its row.
      expect(await readdir(exportDir)).not.toContain(`${String(ex.id)}.enc`);

      // Crypto-shredding: the old ciphertext (as a backup would hold it) cannot be opened.
      expect(await a.get(Keystore).exists(u.id)).toBe(false);
      for (const app of [a, b]) {
        await expect(
          app.get(PersonalDataCipher).open(u.id, 'email', Buffer.from(before.email_enc as Buffer)),
        ).rejects.toBeInstanceOf(DataKeyDestroyedError);
      }

      // The audit log records the request, by pseudonym, without the email in clear.
      const audit = await request(a.getHttpServer())
        .get('/v1/audit-logs')
        .query({ subjectId: u.id, eventType: 'deletion_requests' })
        .set(bearer(KEYS.all))
        .expect(200);
      const actions = (audit.body.items as Body[]).map((i) => i.action);
      expect(actions).toEqual(['requested', 'completed', 'verified']);
      const rawAudit = asText(await sql(`SELECT * FROM audit_logs`));
      expect(rawAudit).not.toContain('erased@example.com');
      expect(rawAudit).not.toContain(u.id);

      // A second erasure of the same user: a clear 409, not a 500.
      const again = await request(a.getHttpServer())
        .post(`/v1/users/${u.id}/erasure`)
        .set(bearer(KEYS.all))
        .expect(409);
      expect(String(again.body.message)).toContain('already erased');
    });

    it('an injected failure leaves everything as it was, shows failed with the reason, and a retry completes', async () => {
      const u = await richUser('faulty');
      const erasure = a.get(ErasureService);
      erasure.faultHook = (stage, kind) => {
        if (stage === 'after-provider' && kind === 'authored_recipes') {
          throw new Error('injected failure after deleting authored recipes');
        }
      };
      try {
        const res = await request(a.getHttpServer())
          .post(`/v1/users/${u.id}/erasure`)
          .set(bearer(KEYS.all))
          .expect(202);
        const failed = await waitFor<{ status: string; error: string }>(
          `/v1/erasure-requests/${String(res.body.id)}`,
          (e) => e.status === 'failed',
        );
        expect(failed.error).toContain('injected failure');
        // Nothing half-deleted: every row and the key are still there.
        for (const [table, col] of [
          ['users', 'id'],
          ['user_profiles', 'user_id'],
          ['taste_profiles', 'user_id'],
          ['consent_events', 'user_id'],
          ['recipes', 'author_id'],
        ]) {
          const rows = await sql(`SELECT count(*)::int AS n FROM ${table} WHERE ${col} = $1`, [
            u.id,
          ]);
          expect({ table, n: rows[0].n }).toEqual({ table, n: 1 });
        }
        expect(await a.get(Keystore).exists(u.id)).toBe(true);
        const user = await request(a.getHttpServer())
          .get(`/v1/users/${u.id}`)
          .set(bearer(KEYS.all))
          .set(strong)
          .expect(200);
        expect(user.body.email).toBe(u.email);
        erasure.faultHook = null;

        // Retry: asking again resumes the same request.
        const retry = await request(a.getHttpServer())
          .post(`/v1/users/${u.id}/erasure`)
          .set(bearer(KEYS.all))
          .expect(202);
        expect(retry.body.id).toBe(res.body.id);
        const done = await waitFor<{ status: string; verified: boolean; attempts: number }>(
          `/v1/erasure-requests/${String(res.body.id)}`,
          (e) => e.status === 'completed',
        );
        expect(done.verified).toBe(true);
        expect(done.attempts).toBe(2);
      } finally {
        erasure.faultHook = null;
      }
    });

    it('re-applying the ledger after a restore erases the user again, even when the restored ledger predates the erasure', async () => {
      const u = await richUser('restored');
      const [userRow] = await sql(
        `SELECT id, email_enc, email_hash, display_name_enc, created_at FROM users WHERE id = $1`,
        [u.id],
      );
      const keystoreDb = `${database}_keystore`;
      const [keyRow] = (
        await adminQuery(
          db,
          db.primaryPort,
          keystoreDb,
          `SELECT * FROM user_data_keys WHERE user_id = $1`,
          [u.id],
        )
      ).rows as Body[];
      const res = await request(a.getHttpServer())
        .post(`/v1/users/${u.id}/erasure`)
        .set(bearer(KEYS.all))
        .expect(202);
      await waitFor(`/v1/erasure-requests/${String(res.body.id)}`, (e) => e.status === 'completed');
      // A restore from a backup older than the erasure: the user is back, the
      // application database's ledger has no entry, and even the key came back.
      await sql(
        `INSERT INTO users (id, email_enc, email_hash, display_name_enc, created_at) VALUES ($1, $2, $3, $4, $5)`,
        [
          userRow.id,
          userRow.email_enc,
          userRow.email_hash,
          userRow.display_name_enc,
          userRow.created_at,
        ],
      );
      await sql(`DELETE FROM erasure_ledger`);
      await adminQuery(
        db,
        db.primaryPort,
        keystoreDb,
        `INSERT INTO user_data_keys (user_id, key_id, wrapped) VALUES ($1, $2, $3)`,
        [keyRow.user_id, keyRow.key_id, keyRow.wrapped],
      );
      const outcome = await a.get(ErasureService).reapplyLedger();
      expect(outcome).toEqual({ usersErased: 1, keysDestroyed: 1 });
      expect(await sql(`SELECT 1 FROM users WHERE id = $1`, [u.id])).toHaveLength(0);
      expect(await a.get(Keystore).exists(u.id)).toBe(false);
    });

    it('a failure after the main commit (keystore commit lost) is resumed by a retry', async () => {
      const u = await richUser('aftercommit');
      const erasure = a.get(ErasureService);
      erasure.faultHook = (stage) => {
        if (stage === 'before-key-commit') {
          throw new Error('injected failure before the keystore commit');
        }
      };
      try {
        const res = await request(a.getHttpServer())
          .post(`/v1/users/${u.id}/erasure`)
          .set(bearer(KEYS.all))
          .expect(202);
        const failed = await waitFor<{ status: string; error: string }>(
          `/v1/erasure-requests/${String(res.body.id)}`,
          (e) => e.status === 'failed',
        );
        expect(failed.error).toContain('before the keystore commit');
        // The rows are gone (that transaction committed); the key is not yet.
        expect(await sql(`SELECT 1 FROM users WHERE id = $1`, [u.id])).toHaveLength(0);
        expect(await a.get(Keystore).exists(u.id)).toBe(true);
        erasure.faultHook = null;
        const retry = await request(a.getHttpServer())
          .post(`/v1/users/${u.id}/erasure`)
          .set(bearer(KEYS.all))
          .expect(202);
        expect(retry.body.id).toBe(res.body.id);
        const done = await waitFor<{ status: string; verified: boolean }>(
          `/v1/erasure-requests/${String(res.body.id)}`,
          (e) => e.status === 'completed',
        );
        expect(done.verified).toBe(true);
        expect(await a.get(Keystore).exists(u.id)).toBe(false);
        // A write racing behind the erasure cannot bring a key back for this user.
        await expect(a.get(PersonalDataCipher).seal(u.id, 'email', 'x')).rejects.toBeInstanceOf(
          DataKeyDestroyedError,
        );
      } finally {
        erasure.faultHook = null;
      }
    });

    it('bad input: unknown user → 404; bad id → 400; wrong scope → 403', async () => {
      await request(a.getHttpServer())
        .post('/v1/users/00000000-0000-4000-8000-000000000000/erasure')
        .set(bearer(KEYS.all))
        .expect(404);
      await request(a.getHttpServer())
        .post('/v1/users/nope/erasure')
        .set(bearer(KEYS.all))
        .expect(400);
      await request(a.getHttpServer())
        .post('/v1/users/00000000-0000-4000-8000-000000000000/erasure')
        .set(bearer(KEYS.opsRead))
        .expect(403);
      await request(a.getHttpServer())
        .get('/v1/erasure-requests/00000000-0000-4000-8000-000000000000')
        .set(bearer(KEYS.all))
        .expect(404);
    });
  });

  it('records user_data_access events for reads of personal data', async () => {
    const u = await richUser('access');
    await request(a.getHttpServer())
      .get(`/v1/users/${u.id}`)
      .set(bearer(KEYS.all))
      .set(strong)
      .expect(200);
    await request(a.getHttpServer())
      .get(`/v1/users/${u.id}/taste-profile`)
      .set(bearer(KEYS.all))
      .expect(200);
    const deadline = Date.now() + 5_000;
    let resources: unknown[] = [];
    while (Date.now() < deadline) {
      const res = await request(a.getHttpServer())
        .get('/v1/audit-logs')
        .query({ subjectId: u.id, eventType: 'user_data_access' })
        .set(bearer(KEYS.all))
        .set(strong)
        .expect(200);
      resources = (res.body.items as Body[]).map((i) => i.resource);
      if (resources.includes('taste_profiles') && resources.includes('users')) {
        break;
      }
      await sleep(100);
    }
    expect(resources).toEqual(expect.arrayContaining(['users', 'taste_profiles']));
  });
});
