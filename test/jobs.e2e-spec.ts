import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { bootApp, testConfig } from './support/app.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { stackEnv } from './support/stack.js';

describe('leader-only scheduled jobs across two instances', () => {
  let a: NestFastifyApplication;
  let b: NestFastifyApplication;
  let db: StackDb;
  let database: string;

  async function runs(): Promise<Array<{ instance_id: string; status: string }>> {
    const res = await adminQuery(
      db,
      db.primaryPort,
      database,
      `SELECT instance_id, status FROM ops_job_runs WHERE job = 'replication-heartbeat' ORDER BY id`,
    );
    return res.rows as Array<{ instance_id: string; status: string }>;
  }

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'jobs');
    const config = testConfig(env, database, {
      JOBS_ENABLED: 'true',
      JOB_CANARY_CRON: '* * * * * *',
    });
    a = await bootApp(config);
    b = await bootApp(config);
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await dropTestDatabase(db, database);
  });

  it('runs each tick on exactly one instance, and the other takes over when it stops', async () => {
    await sleep(3_500);
    const first = await runs();
    expect(first.length).toBeGreaterThanOrEqual(2);
    const leaders = new Set(first.map((r) => r.instance_id));
    expect(leaders.size).toBe(1);
    expect(first.every((r) => r.status === 'succeeded')).toBe(true);

    const heartbeat = await adminQuery(
      db,
      db.primaryPort,
      database,
      'SELECT instance_id FROM ops_heartbeat',
    );
    expect(heartbeat.rows[0].instance_id).toBe([...leaders][0]);

    // Stop whichever instance leads; its session lock goes with its connection.
    const { JobLeadershipService } = await import('../src/database/job-leadership.service.js');
    const leaderApp = a.get(JobLeadershipService).instanceId === [...leaders][0] ? a : b;
    const followerApp = leaderApp === a ? b : a;
    await leaderApp.close();
    // Counted after the close: the old leader may have finished a tick since `first`.
    const cut = (await runs()).length;
    await sleep(3_000);
    const after = (await runs()).slice(cut);
    expect(after.length).toBeGreaterThanOrEqual(1);
    const newLeaders = new Set(after.map((r) => r.instance_id));
    expect(newLeaders).toEqual(new Set([followerApp.get(JobLeadershipService).instanceId]));
  });
});
