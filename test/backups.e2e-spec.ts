import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { BACKUP_PROVIDER } from '../src/backup/backup-provider.factory.js';
import { BackupScheduleJob } from '../src/backup/backup-schedule.job.js';
import { BackupsService } from '../src/backup/backups.service.js';
import type { BackupManifest, BackupProvider } from '../src/backup/backup.types.js';
import { pgbackrest } from '../src/backup/pgbackrest.cli.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
  superQuery,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';
import { seededVector } from './support/vectors.js';

interface Backup {
  id: string;
  kind: string;
  type: string;
  provider: string;
  label: string | null;
  status: string;
  verdict: string;
  startedAt: string;
  finishedAt: string | null;
  startLsn: string | null;
  stopLsn: string | null;
  sizeBytes: number | null;
  repoSizeBytes: number | null;
  checksum: string | null;
  durationMs: number | null;
  error: string | null;
  manifest?: BackupManifest | null;
}

const RECIPES = 30;
const BACKUP_WAIT_MS = 240_000;

describe('backups: pgBackRest backups with registry rows and manifests (real stack)', () => {
  let app: NestFastifyApplication;
  let db: StackDb;
  let database: string;
  let env: Record<string, string>;
  const http = (a = app): ReturnType<NestFastifyApplication['getHttpServer']> => a.getHttpServer();
  const sql = (text: string, params: unknown[] = [], port?: number) =>
    adminQuery(db, port ?? db.primaryPort, database, text, params);

  const getBackup = async (id: string, a = app): Promise<Backup> =>
    (await request(http(a)).get(`/v1/backups/${id}`).set(bearer(KEYS.all)).expect(200))
      .body as Backup;
  const finished = (id: string, a = app): Promise<Backup> =>
    until(
      () => getBackup(id, a),
      (b) => b.status !== 'running',
      BACKUP_WAIT_MS,
      500,
    );
  const metrics = async (a = app): Promise<string> =>
    (await request(http(a)).get('/metrics').expect(200)).text;

  beforeAll(async () => {
    env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'backups');
    for (let i = 0; i < RECIPES; i += 1) {
      await sql(
        `INSERT INTO recipes (title, cuisine, total_minutes, embedding) VALUES ($1, 'thai', $2, $3::vector)`,
        [`recipe ${i}`, i, JSON.stringify(seededVector(i + 1))],
      );
    }
    app = await bootApp(testConfig(env, database));
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    if (database) {
      await dropTestDatabase(db, database);
    }
  });

  it('requires the backup:admin scope', async () => {
    await request(http()).get('/v1/backups').set(bearer(KEYS.none)).expect(403);
    await request(http()).get('/v1/backups').set(bearer(KEYS.opsRead)).expect(403);
    await request(http()).post('/v1/backups').set(bearer(KEYS.opsRead)).send({}).expect(403);
    await request(http()).get('/v1/backups').expect(401);
  });

  it('refuses unknown fields and types with 400, unknown ids with 404', async () => {
    await request(http())
      .post('/v1/backups')
      .set(bearer(KEYS.all))
      .send({ full: true })
      .expect(400);
    await request(http())
      .post('/v1/backups')
      .set(bearer(KEYS.all))
      .send({ type: 'snapshot' })
      .expect(400);
    await request(http())
      .get('/v1/backups/00000000-0000-4000-8000-000000000000')
      .set(bearer(KEYS.all))
      .expect(404);
  });

  let first: Backup;

  it('takes a backup (202 + Location) with its registry row and manifest', async () => {
    const res = await request(http())
      .post('/v1/backups')
      .set(bearer(KEYS.all))
      .send({})
      .expect(202);
    const id = (res.body as { id: string }).id;
    expect(res.headers.location).toBe(`/v1/backups/${id}`);

    first = await finished(id);
    expect(first.error).toBeNull();
    expect(first.status).toBe('succeeded');
    expect(first.provider).toBe('pgbackrest');
    // diff requested: a diff on top of a full, or a base full on an empty repository
    expect([
      ['on-demand', 'diff'],
      ['base', 'full'],
    ]).toContainEqual([first.kind, first.type]);
    expect(first.label).toMatch(/^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/);
    expect(first.verdict).toBe('unvalidated');
    expect(first.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(first.stopLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(first.sizeBytes).toBeGreaterThan(0);
    expect(first.repoSizeBytes).toBeGreaterThan(0);
    expect(first.durationMs).toBeGreaterThan(0);
    // the set's manifest seal, as the repository holds it
    const backupConfig = testConfig(env, database).backup;
    const manifestFile = await pgbackrest(backupConfig, 'repo-get', [], {
      positional: [`backup/${backupConfig.pgbackrest.stanza}/${first.label}/backup.manifest`],
    });
    const seal = /^backrest-checksum="([0-9a-f]{40})"$/m.exec(manifestFile);
    expect(seal).not.toBeNull();
    expect(first.checksum).toBe(seal![1]);

    const m = first.manifest as BackupManifest;
    // taken on the paused replica, at or after the backup's consistency point
    expect(m.exact).toBe(true);
    expect(m.node).toBe(env.DB_NODES.split(',')[1]);
    const cmp = await sql(`SELECT $1::pg_lsn >= $2::pg_lsn AS ok`, [m.lsn, first.stopLsn]);
    expect(cmp.rows[0].ok).toBe(true);
    // the WAL through the manifest's LSN is archived when the backup is recorded, so a
    // restore to it works at once (not after archive_timeout's 60 s on a quiet cluster):
    // recovery reads the record that starts at `lsn`, in the segment holding byte lsn + 1
    // (the next segment when `lsn` is a segment boundary, as after the backup's WAL switch)
    const wal = await superQuery(
      env,
      db.primaryPort,
      'postgres',
      `SELECT last_archived_wal AS archived, pg_walfile_name($1::pg_lsn + 1) AS needed FROM pg_stat_archiver`,
      [m.lsn],
    );
    const { archived, needed } = wal.rows[0] as { archived: string; needed: string };
    expect(archived.slice(0, 24) >= needed).toBe(true);
    // the replica replays again
    const paused = await sql(`SELECT pg_is_wal_replay_paused() AS p`, [], db.replicaPort);
    expect(paused.rows[0].p).toBe(false);

    // every application table, none of the migrations' bookkeeping
    const tables = await sql(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname <> 'typeorm_migrations' ORDER BY 1`,
    );
    expect(Object.keys(m.tables).sort()).toEqual(tables.rows.map((r: { name: string }) => r.name));
    expect(m.tables).not.toHaveProperty('typeorm_migrations');
    expect(m.tables.recipes.rows).toBe(RECIPES);

    // counts equal the database's real counts; unchanged tables have the same checksum
    for (const name of Object.keys(m.tables)) {
      const real = await sql(
        `SELECT count(*)::int AS n,
                coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS checksum
           FROM public."${name}" t`,
      );
      const n = real.rows[0].n as number;
      if (name === 'backup_markers') {
        // the `after` marker came later
        expect(m.tables[name].rows).toBe(n - 1);
      } else {
        expect({ name, rows: m.tables[name].rows }).toEqual({ name, rows: n });
      }
      if (!['backup_markers', 'backups', 'ops_job_runs', 'audit_log'].includes(name)) {
        expect({ name, checksum: m.tables[name].checksum }).toEqual({
          name,
          checksum: real.rows[0].checksum,
        });
      }
    }
    expect(m.tables.recipes.checksum).not.toBe('0');

    // the `before` marker was committed before the backup, the `after` one after it
    const markers = await sql(
      `SELECT id::text AS id, phase FROM backup_markers WHERE backup_id = $1 ORDER BY created_at`,
      [first.id],
    );
    expect(markers.rows).toEqual([
      { id: m.markerBefore, phase: 'before' },
      { id: m.markerAfter, phase: 'after' },
    ]);
    expect(m.tables.backup_markers.rows).toBeGreaterThanOrEqual(1);

    // three exact nearest-neighbour queries: a recipe's own embedding is its nearest
    expect(m.vectorQueries).toHaveLength(3);
    for (const q of m.vectorQueries) {
      expect(q.limit).toBe(10);
      expect(q.ids).toHaveLength(10);
      expect(q.ids[0]).toBe(q.recipeId);
    }

    const text = await metrics();
    expect(text).toMatch(
      new RegExp(`dbu_backup_completion_status\\{[^}]*kind="${first.kind}"[^}]*\\} 1`),
    );
    expect(text).toMatch(/dbu_backup_alert\{[^}]*alert="backup_failed"[^}]*\} 0/);
    expect(text).toMatch(/dbu_backup_repo_size_bytes\{[^}]*\} [1-9]/);
    expect(text).toMatch(/dbu_backup_last_good_age_seconds\{[^}]*\} \d/);
  });

  it('the provider lists the set and reports a recovery window without WAL gaps', async () => {
    const provider = app.get<BackupProvider | null>(BACKUP_PROVIDER);
    expect(provider?.name).toBe('pgbackrest');
    const sets = await provider!.list();
    const set = sets.find((s) => s.label === first.label);
    expect(set?.stopLsn).toBe(first.stopLsn);
    expect(set?.repoSizeBytes).toBe(first.repoSizeBytes);
    const window = await provider!.recoveryWindow();
    expect(window.from).toBeInstanceOf(Date);
    // pgBackRest's own start time (whole seconds), not the registry row's (written just before)
    expect(window.from!.getTime()).toBeLessThanOrEqual(set!.startedAt.getTime());
    expect(window.to!.getTime()).toBeGreaterThanOrEqual(window.from!.getTime());
    expect(window.gaps).toEqual([]);
  });

  it('registry sync marks a backup whose set pgBackRest no longer holds as expired', async () => {
    const gone = await sql(
      `INSERT INTO backups (kind, type, provider, label, status, started_at, finished_at)
       VALUES ('daily', 'diff', 'pgbackrest', '20000101-000000F_20000102-000000D', 'succeeded',
               '2000-01-02T00:00:00Z', '2000-01-02T00:10:00Z')
       RETURNING id::text AS id`,
    );
    const { expired } = await app.get(BackupsService).syncRegistry();
    const goneId = (gone.rows[0] as { id: string }).id;
    expect(expired).toEqual([goneId]);
    expect((await getBackup(goneId)).status).toBe('expired');
    expect((await getBackup(first.id)).status).toBe('succeeded');
  });

  it('runs one backup at a time: a second POST gets 409 naming the running one', async () => {
    const [a, b] = await Promise.all([
      request(http()).post('/v1/backups').set(bearer(KEYS.all)).send({ type: 'incr' }),
      request(http()).post('/v1/backups').set(bearer(KEYS.all)).send({ type: 'incr' }),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([202, 409]);
    const accepted = a.status === 202 ? a : b;
    const refused = a.status === 202 ? b : a;
    const id = (accepted.body as { id: string }).id;
    expect(JSON.stringify(refused.body)).toContain(id);
    const done = await finished(id);
    expect(done.status).toBe('succeeded');
    expect(done.type).toBe('incr');
  });

  it('lists newest first with a cursor', async () => {
    const page1 = await request(http())
      .get('/v1/backups?limit=1')
      .set(bearer(KEYS.all))
      .expect(200);
    const body1 = page1.body as { items: Backup[]; nextCursor: string | null };
    expect(body1.items).toHaveLength(1);
    expect(body1.nextCursor).toEqual(expect.any(String));
    const page2 = await request(http())
      .get('/v1/backups')
      .query({ limit: 1, cursor: body1.nextCursor })
      .set(bearer(KEYS.all))
      .expect(200);
    const body2 = page2.body as { items: Backup[]; nextCursor: string | null };
    expect(body2.items).toHaveLength(1);
    expect(body2.items[0].id).not.toBe(body1.items[0].id);
    expect(body2.items[0].startedAt < body1.items[0].startedAt).toBe(true);
    expect(body2.items[0].id).toBe(first.id);
    expect(body2.items[0]).not.toHaveProperty('manifest');
    await request(http()).get('/v1/backups?cursor=nonsense').set(bearer(KEYS.all)).expect(400);
  });

  it('the daily schedule takes a differential of kind daily, recorded as a job run', async () => {
    const outcome = await app.get(BackupScheduleJob).daily();
    expect(outcome).toMatchObject({ ran: true, status: 'succeeded' });
    const detail = (outcome as { detail: { id: string; kind: string } }).detail;
    expect(detail.kind).toBe('daily');
    const b = await getBackup(detail.id);
    expect(b).toMatchObject({ kind: 'daily', type: 'diff', status: 'succeeded' });
    const run = await sql(
      `SELECT status, detail->>'id' AS id FROM ops_job_runs WHERE job = 'backup-daily' ORDER BY started_at DESC LIMIT 1`,
    );
    expect(run.rows[0]).toEqual({ status: 'succeeded', id: detail.id });
  });

  it('without a replica, reads an approximate manifest on the primary (exact: false)', async () => {
    const primary = env.DB_NODES.split(',')[0];
    const alone = await bootApp(testConfig(env, database, { DB_NODES: primary }));
    try {
      const res = await request(http(alone))
        .post('/v1/backups')
        .set(bearer(KEYS.all))
        .send({ type: 'incr' })
        .expect(202);
      const b = await finished((res.body as { id: string }).id, alone);
      expect(b.status).toBe('succeeded');
      const m = b.manifest as BackupManifest;
      expect(m.exact).toBe(false);
      expect(m.node).toBe(primary);
      expect(m.tables.recipes.rows).toBe(RECIPES);
      expect(m.vectorQueries).toHaveLength(3);
      const cmp = await sql(`SELECT $1::pg_lsn >= $2::pg_lsn AS ok`, [m.lsn, b.stopLsn]);
      expect(cmp.rows[0].ok).toBe(true);
    } finally {
      await alone.close();
    }
  });

  it('records a failing pgBackRest as a failed backup, leaves nothing running, and alerts', async () => {
    const broken = await bootApp(
      testConfig(env, database, { BACKUP_PGBACKREST_STANZA: 'no_such_stanza' }),
    );
    try {
      const res = await request(http(broken))
        .post('/v1/backups')
        .set(bearer(KEYS.all))
        .send({ type: 'full' })
        .expect(202);
      const id = (res.body as { id: string }).id;
      const failed = await finished(id, broken);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/pgbackrest backup failed/);
      expect(failed.label).toBeNull();
      const running = await sql(`SELECT count(*)::int AS n FROM backups WHERE status = 'running'`);
      expect(running.rows[0].n).toBe(0);
      const text = await metrics(broken);
      expect(text).toMatch(/dbu_backup_completion_status\{[^}]*kind="on-demand"[^}]*\} 0/);
      expect(text).toMatch(/dbu_backup_alert\{[^}]*alert="backup_failed"[^}]*\} 1/);
    } finally {
      await broken.close();
    }
  });

  it('marks a backup left running by a crashed process as failed at boot', async () => {
    const row = await sql(
      `INSERT INTO backups (kind, type, provider) VALUES ('on-demand', 'full', 'pgbackrest') RETURNING id::text AS id`,
    );
    const id = (row.rows[0] as { id: string }).id;
    const again = await bootApp(testConfig(env, database));
    try {
      const b = await getBackup(id, again);
      expect(b.status).toBe('failed');
      expect(b.error).toMatch(/abandoned/);
    } finally {
      await again.close();
    }
  });
});
