import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AUTOSCALER_TAG } from '../src/database/autoscaling/rds-replica-fleet.js';
import {
  AutoscaleTick,
  ReplicaAutoscalerService,
} from '../src/database/autoscaling/replica-autoscaler.service.js';
import request from 'supertest';
import { TopologyService } from '../src/database/topology.service.js';
import { bearer, bootApp, KEYS, testConfig } from './support/app.js';
import { useTestAwsCredentials } from './support/aws-credentials.js';
import {
  adminQuery,
  createTestDatabase,
  dropTestDatabase,
  StackDb,
  stackDb,
} from './support/databases.js';
import { MetricsService } from '../src/monitoring/metrics.service.js';
import { FakeCloudWatch, startFakeCloudWatch } from './support/fake-cloudwatch.js';
import { RdsServer, startRdsServer } from './support/rds-server.js';
import { stackEnv } from './support/stack.js';
import { until } from './support/wait.js';

import { jest } from '@jest/globals';

jest.setTimeout(120_000);

const SOURCE = 'prod-dbu-primary';
const MIN = 60_000;

/**
 * The replica autoscaler against endpoints speaking the RDS Query protocol and CloudWatch's
 * JSON protocol (test/support/rds-server.ts, fake-cloudwatch.ts), with the service's real
 * leadership on the stack's PostgreSQL. The test moves the clock a minute per tick and
 * sets each replica's CPUUtilization and DatabaseConnections per minute.
 */
describe('replica autoscaler (spec read_replicas.scaling) on RDS and CloudWatch endpoints', () => {
  useTestAwsCredentials();
  let db: StackDb;
  let database: string;
  let app: NestFastifyApplication;
  let rds: RdsServer;
  let cw: FakeCloudWatch;
  let autoscaler: ReplicaAutoscalerService;
  /** The load of every replica per minute: CPU %, connections. */
  let cpu: (id: string, at: Date) => number | undefined;
  let connections: (id: string, at: Date) => number | undefined;
  let clock: number;

  const replicas = (): string[] =>
    [...rds.instances.values()].filter((i) => i.sourceId === SOURCE).map((i) => i.id);
  const tick = async (minutes = 1): Promise<AutoscaleTick> => {
    clock += minutes * MIN;
    return autoscaler.tick(clock);
  };
  const made = (): string[] =>
    rds.callsOf('CreateDBInstanceReadReplica').map((c) => c.params.DBInstanceIdentifier);

  beforeAll(async () => {
    const env = await stackEnv();
    db = stackDb(env);
    database = await createTestDatabase(db, 'autoscaler');
    rds = await startRdsServer(SOURCE, {
      snapshot: () => Promise.reject(new Error('not in this test')),
      restore: () => Promise.reject(new Error('not in this test')),
    });
    cw = await startFakeCloudWatch();
    cw.metricValue = (metric, id, at) =>
      metric === 'CPUUtilization' ? cpu(id, at) : connections(id, at);
    app = await bootApp(
      testConfig(env, database, {
        REPLICA_AUTOSCALING_ENABLED: 'true',
        REPLICA_AUTOSCALING_RDS_INSTANCE_ID: SOURCE,
        REPLICA_AUTOSCALING_RDS_ENDPOINT: rds.url,
        REPLICA_AUTOSCALING_CLOUDWATCH_ENDPOINT: cw.url,
        REPLICA_AUTOSCALING_REGION: 'us-east-1',
        // the test ticks by hand
        REPLICA_AUTOSCALING_INTERVAL_SECONDS: '86400',
        // the stack's replica is not configured: the last test has RDS report it instead
        DB_NODES: `${db.host}:${db.primaryPort}`,
        REPLICA_AUTOSCALING_DISCOVERY_SECONDS: '1',
        DB_HEALTH_INTERVAL_MS: '300',
        DB_HEALTHY_THRESHOLD: '2',
      }),
    );
    autoscaler = app.get(ReplicaAutoscalerService);
  });

  afterAll(async () => {
    await app?.close();
    await cw?.close();
    await rds?.close();
    if (db) {
      await dropTestDatabase(db, database);
    }
  });

  it('restores minReplicas at once: a source without a replica gets one, tagged as its own', async () => {
    clock = Date.now();
    cpu = () => 10;
    connections = () => 10;
    const t = await tick();
    expect(t).toMatchObject({
      ran: true,
      decision: { action: 'add', reason: '0 replica(s), below minReplicas 1' },
    });
    const [call] = rds.callsOf('CreateDBInstanceReadReplica');
    expect(call.params).toMatchObject({
      SourceDBInstanceIdentifier: SOURCE,
      DBInstanceClass: 'db.t3.small',
      PubliclyAccessible: 'false',
      // the source's network: its subnet group and its active security groups only
      DBSubnetGroupName: 'prod-dbu-isolated',
      'VpcSecurityGroupIds.VpcSecurityGroupId.1': 'sg-0database',
      'Tags.Tag.2.Key': AUTOSCALER_TAG.Key,
      'Tags.Tag.2.Value': AUTOSCALER_TAG.Value,
    });
    expect(call.params.DBInstanceIdentifier).toMatch(/^prod-dbu-primary-replica-auto-\d{14}$/);
    expect(Object.keys(call.params)).not.toContain('VpcSecurityGroupIds.VpcSecurityGroupId.2');
    // RDS builds it: nothing more while it is `creating`, whatever the load
    cpu = () => 99;
    const waiting = await tick();
    expect(waiting).toMatchObject({
      decision: { action: 'none', reason: expect.stringMatching(/is creating$/) },
    });
    expect(made()).toHaveLength(1);
    // the replica the stack defines stands for this one from here on: not the autoscaler's
    const id = made()[0];
    rds.instances.get(id)!.status = 'available';
    rds.instances.get(id)!.tags = [];
  });

  it('adds a replica when CPU holds at 70 % or more for 5 minutes, not for a shorter spike', async () => {
    cpu = (_id, at) => (at.getTime() > clock - 3 * MIN ? 95 : 20);
    connections = () => 20;
    const spike = await tick(10);
    expect(spike).toMatchObject({ decision: { action: 'none' } });
    expect(made()).toHaveLength(1);
    cpu = () => 85;
    const hot = await tick();
    expect(hot).toMatchObject({ decision: { action: 'add' } });
    expect((hot as { decision: { reason: string } }).decision.reason).toContain(
      'lowest CPU 85.0 %',
    );
    expect(made()).toHaveLength(2);
    // GetMetricData asked for both metrics of the replica, one-minute averages
    const query = cw.calls.filter((c) => c.operation === 'GetMetricData').at(-1)!.body;
    expect(query.MetricDataQueries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          MetricStat: expect.objectContaining({
            Metric: {
              Namespace: 'AWS/RDS',
              MetricName: 'CPUUtilization',
              Dimensions: [{ Name: 'DBInstanceIdentifier', Value: made()[0] }],
            },
            Period: 60,
            Stat: 'Average',
          }),
        }),
      ]),
    );
  });

  it('never goes above maxReplicas (2), however long the load stays high', async () => {
    rds.instances.get(made()[1])!.status = 'available';
    for (let i = 0; i < 5; i++) {
      const t = await tick(15);
      expect(t).toMatchObject({
        decision: { action: 'none', reason: 'load above threshold, but at maxReplicas 2' },
      });
    }
    expect(replicas()).toHaveLength(2);
    expect(made()).toHaveLength(2);
  });

  it('removes only the replica it added, after load stays low for 15 minutes and the cooldown', async () => {
    cpu = () => 5;
    connections = () => 5;
    const t = await tick(16);
    expect(t).toMatchObject({ decision: { action: 'remove', id: made()[1] } });
    expect(rds.callsOf('DeleteDBInstance').map((c) => c.params)).toEqual([
      expect.objectContaining({
        DBInstanceIdentifier: made()[1],
        SkipFinalSnapshot: 'true',
        DeleteAutomatedBackups: 'true',
      }),
    ]);
    expect(replicas()).toEqual([made()[0]]);
    // at minReplicas, with the stack's replica only: nothing more to remove
    const after = await tick(60);
    expect(after).toMatchObject({ decision: { action: 'none' } });
    expect(rds.callsOf('DeleteDBInstance')).toHaveLength(1);
  });

  it("adds on connections at 80 % of the writer's max_connections, and waits out the cooldown after a change", async () => {
    const max = Number(
      (
        (await adminQuery(db, db.primaryPort, database, 'SHOW max_connections')).rows[0] as {
          max_connections: string;
        }
      ).max_connections,
    );
    const hotFrom = clock;
    cpu = () => 5;
    connections = (_id, at) => (at.getTime() >= hotFrom ? 0.85 * max : 5);
    const early = await tick(2);
    expect(early).toMatchObject({ decision: { action: 'none' } });
    const hot = await tick(5);
    expect(hot).toMatchObject({ decision: { action: 'add' }, changed: expect.any(String) });
    expect((hot as { decision: { reason: string } }).decision.reason).toContain(
      'lowest connections 85.0 %',
    );
    const id = made().at(-1)!;
    rds.instances.get(id)!.status = 'available';
    expect(await tick(1)).toMatchObject({
      decision: { reason: 'load above threshold, but at maxReplicas 2' },
    });
    // an operator deletes it while the load stays high: the cooldown holds the next add
    rds.instances.delete(id);
    const cooling = await tick(1);
    expect(cooling).toMatchObject({
      decision: { action: 'none', reason: expect.stringContaining('in the cooldown: 480 s left') },
    });
  });

  it('reports a failed creation, retries it after a doubling backoff, and never loops', async () => {
    rds.failNext(
      'CreateDBInstanceReadReplica',
      'InstanceQuotaExceeded',
      'DB instance quota exceeded',
    );
    rds.failNext(
      'CreateDBInstanceReadReplica',
      'InstanceQuotaExceeded',
      'DB instance quota exceeded',
    );
    const before = rds.callsOf('CreateDBInstanceReadReplica').length;
    const first = await tick(10);
    expect(first).toMatchObject({
      decision: { action: 'add' },
      error: 'DB instance quota exceeded',
      retryInMs: 5 * MIN,
    });
    // every minute for the next 4: no call, only the backoff
    for (let i = 0; i < 4; i++) {
      const t = await tick(1);
      expect(t).toMatchObject({
        decision: {
          action: 'none',
          reason: expect.stringMatching(/^backing off after 1 failed attempt/),
        },
      });
    }
    const second = await tick(1);
    expect(second).toMatchObject({ error: 'DB instance quota exceeded', retryInMs: 10 * MIN });
    for (let i = 0; i < 9; i++) {
      expect(await tick(1)).toMatchObject({ decision: { action: 'none' } });
    }
    const third = await tick(1);
    expect(third).toMatchObject({ decision: { action: 'add' }, changed: expect.any(String) });
    // three attempts in 16 minutes of high load: the two failures and the success
    expect(rds.callsOf('CreateDBInstanceReadReplica').length - before).toBe(3);
    const metrics = await app.get(MetricsService).registry.metrics();
    expect(metrics).toMatch(/dbu_replica_autoscaler_failures_total\{action="add"[^}]*\} 2\n/);
  });

  it('discovery: a replica RDS reports available joins the topology and gets reads once healthy; it leaves when deleting', async () => {
    const topology = app.get(TopologyService);
    const name = `${db.host}:${db.replicaPort}`;
    expect(topology.names()).toEqual([`${db.host}:${db.primaryPort}`]);
    const probe = await request(app.getHttpServer())
      .post('/v1/ops/probes')
      .set(bearer(KEYS.all))
      .send({ note: 'discovery' })
      .expect(201);
    const read = async (): Promise<number> =>
      (
        (
          await request(app.getHttpServer())
            .get(`/v1/ops/probes/${(probe.body as { id: string }).id}`)
            .set(bearer(KEYS.opsRead))
            .set('x-consistency', 'eventual')
            .expect(200)
        ).body as { servedBy: { port: number } }
      ).servedBy.port;
    expect(await read()).toBe(db.primaryPort); // no replica known: the writer reads

    // RDS reports the stack's real replica as one of the source's (its endpoint is real)
    rds.instances.set('prod-dbu-replica-found', {
      id: 'prod-dbu-replica-found',
      status: 'available',
      tags: [],
      endpoint: { host: db.host, port: db.replicaPort },
      instanceClass: 'db.t3.small',
      sourceId: SOURCE,
      createdAt: new Date(),
    });
    const joined = await until(
      async () => topology.snapshot().find((n) => n.name === name),
      (n) => n !== undefined,
      10_000,
    );
    // it joins as a discovered node; reads reach it once the checks saw it healthy and caught up
    expect(joined).toMatchObject({ discovered: true });
    expect(
      await until(
        async () => topology.exclusion(name),
        (why) => why === null,
        10_000,
      ),
    ).toBeNull();
    const ports = await until(
      async () => [await read(), await read(), await read()],
      (p) => p.includes(db.replicaPort),
      10_000,
    );
    expect(ports).toContain(db.replicaPort);

    // deleting (by anyone): it leaves the topology and reads go back to the writer
    rds.instances.get('prod-dbu-replica-found')!.status = 'deleting';
    expect(
      await until(
        async () => topology.names(),
        (names) => !names.includes(name),
        10_000,
      ),
    ).toEqual([`${db.host}:${db.primaryPort}`]);
    expect([await read(), await read()]).toEqual([db.primaryPort, db.primaryPort]);
    rds.instances.delete('prod-dbu-replica-found');
  });
});
