import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import type { DrSummary } from '../src/backup/dr/disaster-recovery.js';
import { ErasureService } from '../src/gdpr/erasure.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { adminQuery, stackDb, superQuery } from './support/databases.js';
import { IsolatedStack, REPO_ROOT, stackEnv } from './support/stack.js';
import { until } from './support/wait.js';
import { archiveCurrentWal } from './support/wal.js';

const PORTS = { primary: 27492, replica: 27493, pgbouncer: 27494, redis: 27495 };
const DRILL_TIMEOUT_MS = 15 * 60_000;

/**
 * The DR runbook's drill (docs/dr_runbook.md) on a throwaway stack of its own: data written
 * through the API, a full backup, rows up to the recovery target, a later marker and an
 * erasure after it, then both nodes SIGKILLed and their data folders destroyed. The
 * runbook's one command restores to the target; the keystore lives on the shared stack (it
 * survives, as KEYSTORE_DB_NODE does in production) and its tombstones must erase again the
 * user the restore brought back.
 */
describe('DR drill: npm run dr:restore after the loss of both nodes (isolated real stack)', () => {
  const iso = new IsolatedStack(join(REPO_ROOT, '.stack', 'dr-drill'), PORTS);
  // the run's pid in the name: the global teardown of another jest run going at the same
  // time (scripts/test.sh runs this file beside the fuzzing) keeps it
  const keystoreDb = `dbu_test_r${process.pid}_drdrill_keystore_${randomUUID().slice(0, 8)}`;
  let settings: Record<string, string>;
  let shared: Record<string, string>;
  let serviceEnv: Record<string, string>;
  let app: NestFastifyApplication | null = null;

  const boot = async (): Promise<NestFastifyApplication> => {
    app = await bootApp(testConfig(serviceEnv, 'recipes', { DB_MIGRATIONS_RUN: 'true' }));
    return app;
  };
  const su = (port: number, sql: string, params: unknown[] = []) =>
    superQuery(settings, port, 'recipes', sql, params);

  async function probe(note: string): Promise<string> {
    const res = await request(app!.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note })
      .expect(201);
    return (res.body as { id: string }).id;
  }

  async function user(name: string): Promise<string> {
    const res = await request(app!.getHttpServer())
      .post('/v1/users')
      .set(bearer(KEYS.all))
      .send({ email: `${name}-${randomUUID()}@example.com`, displayName: name })
      .expect(201);
    return (res.body as { id: string }).id;
  }

  /** Everything committed so far is in the repository (a crash loses only unarchived WAL). */
  async function archiveNow(): Promise<void> {
    await archiveCurrentWal(settings, PORTS.primary, 'recipes', 60_000);
  }

  function drRestore(args: string[]): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve) => {
      const child = spawn('npm', ['run', '--silent', 'dr:restore', '--', ...args], {
        cwd: REPO_ROOT,
        env: { ...iso.env, ...serviceEnv, LOG_LEVEL: 'warn' },
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('close', (code) => resolve({ code, output }));
    });
  }

  beforeAll(async () => {
    await rm(iso.dir, { recursive: true, force: true });
    await iso.run('up');
    settings = await iso.settings();
    shared = await stackEnv();
    const sharedPrimary = shared.DB_NODES.split(',')[0];
    // Each stack has a CA of its own: one bundle trusts both (as RDS's bundle holds every
    // region's CA).
    const bundle = join(iso.dir, 'ca-bundle.pem');
    await writeFile(
      bundle,
      (await readFile(settings.DB_SSL_CA, 'utf8')) + (await readFile(shared.DB_SSL_CA, 'utf8')),
    );
    serviceEnv = {
      ...settings,
      DB_SSL_CA: bundle,
      // the keystore (wrapped keys, erasure tombstones) is on the shared stack: outside the
      // cluster that is destroyed and restored (its passwords are the shared stack's)
      KEYSTORE_DB_NODE: sharedPrimary,
      KEYSTORE_DB_NAME: keystoreDb,
      KEYSTORE_DB_USER: shared.DB_USER,
      KEYSTORE_DB_PASSWORD: shared.DB_PASSWORD,
    };
  }, 300_000);

  afterAll(async () => {
    await app?.close().catch(() => undefined);
    await iso.run('down').catch(() => undefined);
    await rm(iso.dir, { recursive: true, force: true });
    const db = stackDb(shared);
    await adminQuery(
      db,
      db.primaryPort,
      'postgres',
      `DROP DATABASE IF EXISTS ${keystoreDb} WITH (FORCE)`,
    ).catch(() => undefined);
  }, 120_000);

  it(
    'restores every row up to the target, none after, erases the erased user again, rebuilds the replica, and the service writes again',
    async () => {
      // --- before the disaster ---
      await boot();
      const kept = await user('kept');
      const erased = await user('erased');
      const beforeBackup: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        beforeBackup.push(await probe(`before-backup-${i}`));
      }
      await iso.run('backup', 'full');
      const beforeTarget: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        beforeTarget.push(await probe(`after-backup-${i}`));
      }
      await sleep(1100);
      const target = new Date();
      await sleep(1100);
      const later = await probe('later-marker');
      // erased after the target: the restored copy brings the user back
      const erasure = await request(app!.getHttpServer())
        .post(`/v1/users/${erased}/erasure`)
        .set(bearer(KEYS.all))
        .expect(202);
      await app!.get(ErasureService).process((erasure.body as { id: string }).id);
      const done = await until(
        () =>
          request(app!.getHttpServer())
            .get(`/v1/erasure-requests/${(erasure.body as { id: string }).id}`)
            .set(bearer(KEYS.all)),
        (r) => (r.body as { status: string }).status === 'completed',
        30_000,
        200,
      );
      expect((done.body as { status: string }).status).toBe('completed');
      await request(app!.getHttpServer())
        .get(`/v1/users/${erased}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(404);
      await archiveNow();
      await app!.close();
      app = null;

      // --- the disaster: both nodes die and their data folders are gone ---
      await iso.run('kill', 'primary');
      await iso.run('kill', 'replica');
      await rm(join(iso.dir, 'primary'), { recursive: true, force: true });
      await rm(join(iso.dir, 'replica'), { recursive: true, force: true });

      // --- the runbook's one command ---
      const dry = await drRestore(['--target-time', target.toISOString(), '--dry-run']);
      expect({ code: dry.code, output: dry.output }).toMatchObject({ code: 0 });
      expect(dry.output).toContain('dry run');
      const { code, output } = await drRestore(['--target-time', target.toISOString()]);
      process.stdout.write(`${output}\n`);
      expect({ code, tail: output.split('\n').slice(-15).join('\n') }).toMatchObject({ code: 0 });
      expect(output).toMatch(/measured RTO\s+\d+(\.\d)? s/);
      const summary = JSON.parse(/^DR_SUMMARY (.*)$/m.exec(output)![1]) as DrSummary;
      expect(summary.steps.map((s) => s.n)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(summary.rtoSeconds).toBeGreaterThan(0);
      expect(summary.ledger).toEqual({ usersErased: 1, keysDestroyed: 0 });
      expect(summary.validation).toMatchObject({
        writer: `127.0.0.1:${PORTS.primary}`,
        replicas: [{ node: `127.0.0.1:${PORTS.replica}`, streaming: true }],
      });
      // the recovery point lies between the last row before the target and the target
      const point = new Date(summary.recoveryPoint!.lastTransactionAt!);
      expect(point.getTime()).toBeLessThanOrEqual(target.getTime());
      expect(point.getTime()).toBeGreaterThan(target.getTime() - 5_000);
      // the folders were destroyed (rm -rf): nothing left to move aside
      expect(summary.movedAside).toEqual([]);

      // --- the restored cluster ---
      const ids = await su(PORTS.primary, `SELECT id::text, note FROM ops_probes`);
      const present = new Set(ids.rows.map((r) => (r as { id: string }).id));
      expect([...beforeBackup, ...beforeTarget].filter((id) => !present.has(id))).toEqual([]);
      expect(present.has(later)).toBe(false);
      const users = await su(PORTS.primary, `SELECT id::text FROM users WHERE id = ANY($1)`, [
        [kept, erased],
      ]);
      expect(users.rows.map((r) => (r as { id: string }).id)).toEqual([kept]);
      const leftovers = await su(
        PORTS.primary,
        `SELECT count(*)::int AS n FROM user_profiles WHERE user_id = $1`,
        [erased],
      );
      expect(leftovers.rows[0]).toEqual({ n: 0 });
      const streaming = await su(
        PORTS.primary,
        `SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`,
      );
      expect(streaming.rows[0]).toEqual({ n: 1 });
      const replica = await su(
        PORTS.replica,
        `SELECT pg_is_in_recovery() AS standby, (SELECT status FROM pg_stat_wal_receiver) AS status`,
      );
      expect(replica.rows[0]).toEqual({ standby: true, status: 'streaming' });
      // the replica has the restored rows, not the lost ones
      const onReplica = await until(
        () =>
          su(PORTS.replica, `SELECT count(*)::int AS n FROM ops_probes WHERE id = ANY($1)`, [
            beforeTarget,
          ]),
        (r) => (r.rows[0] as { n: number }).n === beforeTarget.length,
        30_000,
        200,
      );
      expect(onReplica.rows[0]).toEqual({ n: beforeTarget.length });

      // --- the service writes again ---
      await boot();
      const after = await probe('after-restore');
      await request(app!.getHttpServer())
        .get(`/v1/ops/probes/${after}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(200);
      await request(app!.getHttpServer())
        .get(`/v1/users/${kept}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(200);
      await request(app!.getHttpServer())
        .get(`/v1/users/${erased}`)
        .set(bearer(KEYS.all))
        .set('x-consistency', 'strong')
        .expect(404);
    },
    DRILL_TIMEOUT_MS,
  );
});
