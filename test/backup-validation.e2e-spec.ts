import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import request from 'supertest';
import type { BackupManifest } from '../src/backup/backup.types.js';
import { recoveryWindow } from '../src/backup/recovery-window.js';
import { RestoresService } from '../src/backup/restores.service.js';
import {
  removeOrphanFolders,
  ScratchPostgres,
  scratchRoot,
} from '../src/backup/scratch-instance.js';
import { exactNeighbours, tableChecksums } from '../src/backup/table-checksums.js';
import { ValidationService } from '../src/backup/validation.service.js';
import type { AppConfig } from '../src/config/app-config.js';
import { ErasureService } from '../src/gdpr/erasure.service.js';
import { API_KEYS_JSON, bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { pgbackrest } from '../src/backup/pgbackrest.cli.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  pitrRowCounts,
  stackDb,
  superQuery,
  testSsl,
} from './support/databases.js';
import { REPO_ROOT, stackCommand, stackEnv } from './support/stack.js';
import { seededVector } from './support/vectors.js';
import { until } from './support/wait.js';
import { archiveCurrentWal } from './support/wal.js';

import { jest } from '@jest/globals';

jest.setTimeout(900_000);

interface Check {
  type: string;
  passed: boolean;
  details: Record<string, unknown>;
}
interface ValidationBody {
  id: string;
  status: string;
  error: string | null;
  report: {
    checks: Check[];
    erasure: { usersErased: number; leftovers: unknown[]; passed: boolean } | null;
  } | null;
}

describe('backup validation and point-in-time restores (real pgBackRest, real PostgreSQL)', () => {
  let app: NestFastifyApplication;
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let config: AppConfig;

  const sql = async (text: string, params: unknown[] = []): Promise<pg.QueryResult> =>
    adminQuery(db, db.primaryPort, database, text, params);

  async function insertRecipes(prefix: string, n: number, seed: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1) {
      const res = await sql(
        `INSERT INTO recipes (title, cuisine, total_minutes, embedding)
         VALUES ($1, $2, $3, $4::vector) RETURNING id::text AS id`,
        [
          `${prefix} ${i}`,
          i % 2 === 0 ? 'thai' : 'greek',
          10 + i,
          `[${seededVector(seed + i).join(',')}]`,
        ],
      );
      ids.push((res.rows[0] as { id: string }).id);
    }
    return ids;
  }

  /** Archives the current WAL segment and waits until pgBackRest has it. */
  /** This file's scratch folders (other databases' may share the root). */
  async function ownScratchDirs(): Promise<string[]> {
    return (await readdir(scratchRoot(config.backup))).filter((d) => d.startsWith(`${database}-`));
  }

  async function archiveNow(): Promise<void> {
    const { segment, lastArchived } = await archiveCurrentWal(env, db.primaryPort);
    expect(lastArchived! >= segment).toBe(true);
  }

  async function newestBackup(): Promise<{ label: string; startLsn: string; stopLsn: string }> {
    const info = JSON.parse(
      await import('../src/backup/pgbackrest.cli.js').then((m) =>
        m.pgbackrest(config.backup, 'info', ['--output=json']),
      ),
    ) as Array<{ backup: Array<{ label: string; lsn: { start: string; stop: string } }> }>;
    const b = info[0].backup[info[0].backup.length - 1];
    return { label: b.label, startLsn: b.lsn.start, stopLsn: b.lsn.stop };
  }

  /**
   * What the backup side does: a marker, the backup, then on the replica paused at L ≥
   * the stop LSN the table checksums and vector answers, a marker after L; the registry row.
   */
  async function backupWithManifest(
    vectorIds: string[],
  ): Promise<{ id: string; label: string; manifest: BackupManifest }> {
    const id = randomUUID();
    const before = await sql(
      `INSERT INTO backup_markers (backup_id, phase) VALUES ($1, 'before') RETURNING id::text AS id`,
      [id],
    );
    await stackCommand('backup', 'full');
    const b = await newestBackup();
    // The replica replays past the stop LSN, then pauses there.
    const lsnOk = await until(
      async () =>
        (
          await superQuery(
            env,
            db.replicaPort,
            'postgres',
            `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok`,
            [b.stopLsn],
          )
        ).rows[0] as { ok: boolean },
      (r) => r.ok,
      60_000,
      100,
    );
    expect(lsnOk.ok).toBe(true);
    await superQuery(env, db.replicaPort, 'postgres', `SELECT pg_wal_replay_pause()`);
    let manifest: BackupManifest;
    try {
      await until(
        async () =>
          (
            await superQuery(
              env,
              db.replicaPort,
              'postgres',
              `SELECT pg_get_wal_replay_pause_state() AS s`,
            )
          ).rows[0] as { s: string },
        (r) => r.s === 'paused',
        30_000,
        50,
      );
      const lsn = (
        (
          await superQuery(
            env,
            db.replicaPort,
            'postgres',
            `SELECT pg_last_wal_replay_lsn()::text AS l`,
          )
        ).rows[0] as { l: string }
      ).l;
      const client = new pg.Client({
        host: `${env.STACK_DIR}/run`,
        port: db.replicaPort,
        user: 'postgres',
        database,
      });
      await client.connect();
      let tables: BackupManifest['tables'];
      const vectorQueries: BackupManifest['vectorQueries'] = [];
      try {
        tables = await tableChecksums(client);
        for (const recipeId of vectorIds) {
          vectorQueries.push({
            recipeId,
            limit: 5,
            ids: await exactNeighbours(client, recipeId, 5),
          });
        }
      } finally {
        await client.end();
      }
      // Written while the replica is paused at L: certainly after L.
      const after = await sql(
        `INSERT INTO backup_markers (backup_id, phase) VALUES ($1, 'after') RETURNING id::text AS id`,
        [id],
      );
      manifest = {
        lsn,
        exact: true,
        node: `${db.host}:${db.replicaPort}`,
        takenAt: new Date().toISOString(),
        markerBefore: (before.rows[0] as { id: string }).id,
        markerAfter: (after.rows[0] as { id: string }).id,
        tables,
        vectorQueries,
      };
    } finally {
      await superQuery(env, db.replicaPort, 'postgres', `SELECT pg_wal_replay_resume()`);
    }
    await archiveNow();
    await sql(
      `INSERT INTO backups (id, kind, type, provider, label, status, start_lsn, stop_lsn, finished_at, manifest)
       VALUES ($1, 'on-demand', 'full', 'pgbackrest', $2, 'succeeded', $3, $4, now(), $5)`,
      [id, b.label, b.startLsn, b.stopLsn, JSON.stringify(manifest)],
    );
    expect(manifest.tables.recipes.rows).toBeGreaterThan(0);
    return { id, label: b.label, manifest };
  }

  async function validate(backupId: string): Promise<ValidationBody> {
    const res = await request(app.getHttpServer())
      .post(`/v1/backups/${backupId}/validations`)
      .set(bearer(KEYS.all))
      .expect(202);
    expect(res.headers.location).toBe(`/v1/backup-validations/${res.body.id}`);
    await app.get(ValidationService).drain();
    const got = await request(app.getHttpServer())
      .get(res.headers.location)
      .set(bearer(KEYS.all))
      .expect(200);
    return got.body as ValidationBody;
  }

  const check = (v: ValidationBody, type: string): Check =>
    v.report!.checks.find((c) => c.type === type)!;

  let recipeIds: string[];
  let good: { id: string; label: string; manifest: BackupManifest };
  let erasedUser: string;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'backupval');
    config = testConfig(env, database);
    app = await bootApp(config);
    recipeIds = await insertRecipes('before-backup', 24, 1000);
    const user = await request(app.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: `erased-${randomUUID()}@example.com`, displayName: 'to be erased' })
      .expect(201);
    erasedUser = (user.body as { id: string }).id;
    good = await backupWithManifest(recipeIds.slice(0, 3));
    // Erased after the backup: the restored copy still has the user until the ledger is re-applied.
    const erasure = await request(app.getHttpServer())
      .post(`/v1/users/${erasedUser}/erasure`)
      .set(bearer(KEYS.all))
      .expect(202);
    await app.get(ErasureService).process((erasure.body as { id: string }).id);
    await archiveNow();
  });

  afterAll(async () => {
    await app?.get(ValidationService).drain();
    await app?.get(RestoresService).drain();
    await app?.close();
    if (db && database) {
      // A restore left ready by a failed test would outlive its dropped database.
      await removeOrphanFolders(config.backup, `${database}-`, new Set());
      await dropTestDatabase(db, database);
    }
  });

  it('validates a good backup: all four checks pass, the ledger is re-applied on the copy, verdict good; a second request meanwhile gets 409', async () => {
    const first = await request(app.getHttpServer())
      .post(`/v1/backups/${good.id}/validations`)
      .set(bearer(KEYS.all))
      .expect(202);
    const second = await request(app.getHttpServer())
      .post(`/v1/backups/${good.id}/validations`)
      .set(bearer(KEYS.all))
      .expect(409);
    expect(second.body.message).toContain(first.body.id);
    await app.get(ValidationService).drain();
    const v = (
      await request(app.getHttpServer())
        .get(`/v1/backup-validations/${first.body.id}`)
        .set(bearer(KEYS.all))
        .expect(200)
    ).body as ValidationBody;
    expect({ status: v.status, error: v.error }).toEqual({ status: 'passed', error: null });
    expect(v.report!.checks.map((c) => [c.type, c.passed])).toEqual([
      ['restore_test', true],
      ['data_integrity_check', true],
      ['performance_validation', true],
      ['recovery_time_measurement', true],
    ]);
    expect(check(v, 'data_integrity_check').details).toMatchObject({
      markerBeforePresent: true,
      markerAfterAbsent: true,
      checksumMismatches: [],
      vectorMismatches: [],
    });
    expect(v.report!.erasure).toMatchObject({ usersErased: 1, leftovers: [], passed: true });
    const row = await sql(`SELECT verdict FROM backups WHERE id = $1`, [good.id]);
    expect(row.rows[0]).toEqual({ verdict: 'good' });
    // The scratch instance is gone.
    expect(await ownScratchDirs()).toEqual([]);
    const metrics = await request(app.getHttpServer()).get('/metrics').set(bearer(KEYS.all));
    expect(metrics.text).toMatch(
      /dbu_backup_alert\{alert="restoration_test_failed",severity="high"[^}]*\} 0/,
    );
  });

  it('answers 404 for an unknown backup and 409 for one that did not succeed', async () => {
    await request(app.getHttpServer())
      .post(`/v1/backups/${randomUUID()}/validations`)
      .set(bearer(KEYS.all))
      .expect(404);
    const failed = randomUUID();
    await sql(
      `INSERT INTO backups (id, kind, type, provider, label, status) VALUES ($1, 'on-demand', 'full', 'pgbackrest', $2, 'failed')`,
      [failed, `failed-${failed}`],
    );
    const res = await request(app.getHttpServer())
      .post(`/v1/backups/${failed}/validations`)
      .set(bearer(KEYS.all))
      .expect(409);
    expect(res.body.message).toContain('failed');
  });

  it('a corrupted index page in the restored copy fails data_integrity_check naming the index', async () => {
    const service = app.get(ValidationService);
    service.beforeChecks = async (instance) => {
      const scratch = instance as ScratchPostgres;
      const [{ path }] = await scratch.query<{ path: string }>(
        database,
        `SELECT pg_relation_filepath('recipes_pkey') AS path`,
      );
      await scratch.halt();
      const file = join(scratch.dir, path);
      const bytes = await readFile(file);
      // Block 1 (the first leaf; block 0 is the metapage): garbage over its items.
      bytes.fill(0x7f, 8192 + 64, 8192 + 4096);
      await writeFile(file, bytes);
      await scratch.resume();
    };
    try {
      const v = await validate(good.id);
      expect(v.status).toBe('failed');
      const integrity = check(v, 'data_integrity_check');
      expect(integrity.passed).toBe(false);
      expect(JSON.stringify(integrity.details)).toContain('recipes_pkey');
      expect(check(v, 'restore_test').passed).toBe(true);
    } finally {
      service.beforeChecks = undefined;
    }
    const row = await sql(`SELECT verdict FROM backups WHERE id = $1`, [good.id]);
    expect(row.rows[0]).toEqual({ verdict: 'bad' });
    expect(await ownScratchDirs()).toEqual([]);
    const metrics = await request(app.getHttpServer()).get('/metrics').set(bearer(KEYS.all));
    expect(metrics.text).toMatch(
      /dbu_backup_alert\{alert="restoration_test_failed",severity="high"[^}]*\} 1/,
    );
  });

  it('restores to a point in time inside the window: rows committed before the target, none after; then it expires', async () => {
    await insertRecipes('pitr-before', 3, 2000);
    await sleep(1_500);
    const target = new Date();
    await sleep(1_500);
    await insertRecipes('pitr-after', 2, 3000);
    await archiveNow();
    const res = await request(app.getHttpServer())
      .post('/v1/restores')
      .set(bearer(KEYS.all))
      .send({ targetTime: target.toISOString() })
      .expect(202);
    expect(res.headers.location).toBe(`/v1/restores/${res.body.id}`);
    await app.get(RestoresService).drain();
    const got = (
      await request(app.getHttpServer()).get(res.headers.location).set(bearer(KEYS.all)).expect(200)
    ).body as Record<string, unknown>;
    expect(got).toMatchObject({
      status: 'ready',
      host: '127.0.0.1',
      user: env.DB_USER,
      error: null,
    });
    expect(JSON.stringify(got)).not.toContain(
      env.DB_PASSWORD === env.DB_USER ? '\u0000' : env.DB_PASSWORD,
    );
    expect(got.databases).toEqual(expect.arrayContaining([database]));
    expect(
      new Date(got.expiresAt as string).getTime() - new Date(got.readyAt as string).getTime(),
    ).toBe(config.backup.scratch.restoreTtlMinutes * 60_000);
    // The application's role and password work on the copy.
    const client = new pg.Client({
      host: '127.0.0.1',
      port: got.port as number,
      user: env.DB_USER,
      password: env.DB_PASSWORD,
      database,
      ssl: testSsl(env),
    });
    await client.connect();
    try {
      expect(await pitrRowCounts(client)).toEqual({ before: 3, after: 0 });
      // The erasure ledger was re-applied before it was handed out.
      const erased = await client.query(`SELECT count(*)::int AS n FROM users WHERE id = $1`, [
        erasedUser,
      ]);
      expect(erased.rows[0]).toEqual({ n: 0 });
    } finally {
      await client.end();
    }
    const row = await sql(`SELECT scratch_dir FROM restores WHERE id = $1`, [res.body.id]);
    const dir = (row.rows[0] as { scratch_dir: string }).scratch_dir;
    expect(existsSync(dir)).toBe(true);
    await sql(`UPDATE restores SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      res.body.id,
    ]);
    expect((await app.get(RestoresService).sweep()).expired).toEqual([res.body.id]);
    expect(existsSync(dir)).toBe(false);
    const after = await request(app.getHttpServer())
      .get(res.headers.location)
      .set(bearer(KEYS.all))
      .expect(200);
    expect(after.body.status).toBe('expired');
  });

  it('refuses targets outside the window (naming it) and bodies with none or both targets', async () => {
    const future = await request(app.getHttpServer())
      .post('/v1/restores')
      .set(bearer(KEYS.all))
      .send({ targetTime: new Date(Date.now() + 3600_000).toISOString() })
      .expect(400);
    expect(future.body.message).toMatch(
      /outside the recoverable window \d{4}-\d\d-\d\dT.* \.\. \d{4}-/,
    );
    const past = await request(app.getHttpServer())
      .post('/v1/restores')
      .set(bearer(KEYS.all))
      .send({ targetTime: '2001-01-01T00:00:00Z' })
      .expect(400);
    expect(past.body.message).toContain('recoverable window');
    const both = await request(app.getHttpServer())
      .post('/v1/restores')
      .set(bearer(KEYS.all))
      .send({ targetTime: new Date().toISOString(), targetLsn: '0/1' })
      .expect(400);
    expect(both.body.message).toContain('targetTime, targetLsn');
    const none = await request(app.getHttpServer())
      .post('/v1/restores')
      .set(bearer(KEYS.all))
      .send({})
      .expect(400);
    expect(none.body.message).toContain('exactly one of targetTime, targetLsn');
  });

  it('a repository file corrupted after the backup fails the validation, naming the file, and marks the backup bad', async () => {
    await insertRecipes('second-backup', 4, 4000);
    const second = await backupWithManifest(recipeIds.slice(0, 2));
    const root = join(
      env.STACK_DIR,
      'backup-repo',
      'backup',
      'dbu',
      second.label,
      'pg_data',
      'base',
    );
    // The biggest file of the backup set: a table's heap.
    let victim = '';
    let size = 0;
    for (const d of await readdir(root)) {
      for (const f of await readdir(join(root, d))) {
        const s = (await stat(join(root, d, f))).size;
        if (s > size) {
          size = s;
          victim = join(root, d, f);
        }
      }
    }
    const original = await readFile(victim);
    const flipped = Buffer.from(original);
    for (let i = Math.floor(flipped.length / 2); i < Math.floor(flipped.length / 2) + 64; i += 1) {
      flipped[i] ^= 0xff;
    }
    await writeFile(victim, flipped);
    try {
      const v = await validate(second.id);
      expect(v.status).toBe('failed');
      const restore = check(v, 'restore_test');
      expect(restore.passed).toBe(false);
      expect(v.error).toContain('is damaged');
      // pgBackRest's verify names the file whose checksum does not match.
      const name = victim
        .split('/')
        .pop()!
        .replace(/\.zst$/, '');
      expect(JSON.stringify(restore.details)).toContain(name);
      expect(v.error).toContain(`${second.label}/pg_data/base/`);
      expect(
        v.report!.checks.every((c) => !c.passed || c.type === 'recovery_time_measurement'),
      ).toBe(true);
    } finally {
      await writeFile(victim, original);
    }
    const row = await sql(`SELECT verdict FROM backups WHERE id = $1`, [second.id]);
    expect(row.rows[0]).toEqual({ verdict: 'bad' });
    expect(await ownScratchDirs()).toEqual([]);
  });

  it('an archive gap is reported by the window and a restore into it is refused', async () => {
    await stackCommand('backup', 'full');
    const names: string[] = [];
    let firstArchivedBy = 0;
    for (let i = 0; i < 3; i += 1) {
      await insertRecipes(`gap-${i}`, 1, 5000 + i);
      await archiveNow();
      firstArchivedBy ||= Date.now();
      const w = await superQuery(
        env,
        db.primaryPort,
        'postgres',
        `SELECT last_archived_wal AS w FROM pg_stat_archiver`,
      );
      names.push((w.rows[0] as { w: string }).w);
    }
    const [, missing] = names;
    const archiveDir = join(env.STACK_DIR, 'backup-repo', 'archive', 'dbu');
    const [archiveId] = await readdir(archiveDir);
    const segDir = join(archiveDir, archiveId, missing.slice(0, 16));
    const file = (await readdir(segDir)).find((f) => f.startsWith(`${missing}-`))!;
    const saved = await readFile(join(segDir, file));
    await unlink(join(segDir, file));
    // A target after the gap: the range before it ends at the archive time of names[0]
    // (whole seconds), so the target lies in a later second than that.
    const target = new Date((Math.floor(firstArchivedBy / 1000) + 1) * 1000 + 1);
    await sleep(Math.max(0, target.getTime() - Date.now()));
    try {
      const window = await recoveryWindow(config.backup);
      expect(window.gaps).toEqual(
        expect.arrayContaining([{ afterWal: names[0], beforeWal: names[2] }]),
      );
      const res = await request(app.getHttpServer())
        .post('/v1/restores')
        .set(bearer(KEYS.all))
        .send({ targetTime: target.toISOString() })
        .expect(400);
      expect(res.body.message).toContain(`archive gap: WAL missing between ${names[0]}`);
      expect(res.body.message).toContain(names[2]);
    } finally {
      await writeFile(join(segDir, file), saved);
      await superQuery(env, db.primaryPort, 'postgres', `SELECT 1`);
    }
    const healed = await recoveryWindow(config.backup);
    expect(healed.gaps).toEqual([]);
  });
});

/** The built service as operators run it, killed with SIGKILL in the middle of a validation. */
describe('a validation interrupted by the death of the service', () => {
  const PORT = 20180;
  const base = `http://127.0.0.1:${PORT}`;
  let env: Record<string, string>;
  let db: StackDb;
  let database: string;
  let child: ChildProcess | null = null;
  let gate: pg.Client | null = null;
  let output = '';

  async function startService(): Promise<ChildProcess> {
    output = '';
    const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'main.js')], {
      env: {
        ...process.env,
        ...env,
        NODE_ENV: 'test',
        DB_NAME: database,
        PORT: String(PORT),
        HOST: '127.0.0.1',
        API_KEYS: API_KEYS_JSON,
        JOBS_ENABLED: 'false',
        LOG_LEVEL: 'info',
        BACKUP_SCRATCH_DIR: join(env.STACK_DIR, 'backup-scratch'),
        ...(process.env.BACKUP_SCRATCH_PORTS
          ? { BACKUP_SCRATCH_PORTS: process.env.BACKUP_SCRATCH_PORTS }
          : {}),
      },
    });
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        if ((await fetch(`${base}/health/live`)).ok) {
          return proc;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || proc.exitCode !== null) {
        throw new Error(`service did not start:\n${output}`);
      }
      await sleep(200);
    }
  }

  /** A live process (a zombie awaiting its reaper is not one). */
  async function running(pid: number): Promise<boolean> {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      return stat.split(') ')[1]?.[0] !== 'Z';
    } catch {
      return false;
    }
  }

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'backupcrash');
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
    }
    await gate?.end();
    await removeOrphanFolders(testConfig(env, database).backup, `${database}-`, new Set());
    await dropTestDatabase(db, database);
  });

  it('at the next boot the scratch instance and its folder are gone and the validation is failed', async () => {
    const config = testConfig(env, database);
    // A backup that holds this test's database, so the validation gets past its restore.
    await stackCommand('backup', 'incr');
    const info = JSON.parse(await pgbackrest(config.backup, 'info', ['--output=json'])) as Array<{
      backup: Array<{ label: string; lsn: { start: string; stop: string } }>;
    }>;
    const b = info[0].backup[info[0].backup.length - 1];
    const backupId = randomUUID();
    const manifest: BackupManifest = {
      lsn: b.lsn.stop,
      exact: false,
      node: 'none',
      takenAt: new Date().toISOString(),
      markerBefore: randomUUID(),
      markerAfter: randomUUID(),
      tables: {},
      vectorQueries: [],
    };
    await adminQuery(
      db,
      db.primaryPort,
      database,
      `INSERT INTO backups (id, kind, type, provider, label, status, start_lsn, stop_lsn, finished_at, manifest)
       VALUES ($1, 'on-demand', 'full', 'pgbackrest', $2, 'succeeded', $3, $4, now(), $5)`,
      [backupId, b.label, b.lsn.start, b.lsn.stop, JSON.stringify(manifest)],
    );
    child = await startService();
    // Park the validation after its restore: re-applying the erasure ledger reads the
    // keystore's tombstones, which this lock holds back until the service is dead (no
    // race between seeing the scratch instance and the kill).
    gate = new pg.Client({
      host: db.host,
      port: db.primaryPort,
      user: db.user,
      password: db.password,
      database: `${database}_keystore`,
      ssl: db.ssl,
    });
    await gate.connect();
    await gate.query('BEGIN');
    await gate.query('LOCK TABLE erased_subjects IN ACCESS EXCLUSIVE MODE');
    const res = await fetch(`${base}/v1/backups/${backupId}/validations`, {
      method: 'POST',
      headers: bearer(KEYS.all),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    // Killed while its scratch PostgreSQL runs and the validation waits on the lock. A
    // validation that ends before reaching the lock stops the wait and says why.
    const waiting = await until(
      async () => {
        const locks = await adminQuery(
          db,
          db.primaryPort,
          `${database}_keystore`,
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
            WHERE c.relname = 'erased_subjects' AND NOT l.granted`,
        );
        const v = await adminQuery(
          db,
          db.primaryPort,
          database,
          `SELECT status, error FROM backup_validations WHERE id = $1`,
          [id],
        );
        return {
          n: (locks.rows[0] as { n: number }).n,
          validation: v.rows[0] as { status: string; error: string | null },
        };
      },
      (r) => r.n > 0 || r.validation.status !== 'running',
      120_000,
      50,
    );
    if (waiting.n === 0) {
      throw new Error(
        `the validation never waited on the lock (${JSON.stringify(waiting.validation)}); service log:\n${output.slice(-6000)}`,
      );
    }
    expect(waiting.n).toBeGreaterThan(0);
    const dir = await until(
      async () => {
        const r = await adminQuery(
          db,
          db.primaryPort,
          database,
          `SELECT scratch_dir FROM backup_validations WHERE id = $1`,
          [id],
        );
        const d = (r.rows[0] as { scratch_dir: string | null }).scratch_dir;
        return d && existsSync(join(d, 'postmaster.pid')) ? d : null;
      },
      (d) => d !== null,
      120_000,
      20,
    );
    expect(dir).not.toBeNull();
    child.kill('SIGKILL');
    await once(child, 'exit');
    await gate.end();
    gate = null;
    const pid = Number((await readFile(join(dir!, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    // The socket lives in a short folder under the temp dir (a deep checkout's path is
    // longer than a Unix socket path may be); the crash cleanup must remove it too.
    const socketDir = (await readFile(join(dir!, 'dbu_socket_dir'), 'utf8')).trim();
    expect(socketDir.length).toBeLessThan(60);
    expect((await readdir(socketDir)).some((f) => f.startsWith('.s.PGSQL.'))).toBe(true);
    const row = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT status FROM backup_validations WHERE id = $1`,
      [id],
    );
    expect(row.rows[0]).toEqual({ status: 'running' });
    expect(await running(pid)).toBe(true); // the orphan PostgreSQL outlived the service

    child = await startService();
    expect(existsSync(dir!)).toBe(false);
    expect(existsSync(socketDir)).toBe(false);
    expect(await running(pid)).toBe(false);
    const after = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT status, error FROM backup_validations WHERE id = $1`,
      [id],
    );
    expect(after.rows[0]).toEqual({
      status: 'failed',
      error: 'the service stopped during the validation',
    });
    child.kill('SIGTERM');
    await once(child, 'exit');
  });
});
