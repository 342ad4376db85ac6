import {
  CloudWatchClient,
  GetMetricDataCommand,
  MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import {
  CreateDBInstanceReadReplicaCommand,
  DBInstance,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { rdsIdentifier } from '../../backup/rds.mapping.js';
import type { ReplicaAutoscalingConfig } from '../../config/app-config.js';
import type { LoadSample, ReplicaView } from './replica-autoscaling.policy.js';

/** Tag of the replicas the autoscaler adds: the only ones it removes. */
export const AUTOSCALER_TAG = { Key: 'created-by', Value: 'database-unit-autoscaler' };
const SERVICE_TAG = { Key: 'service', Value: 'database-unit' };

/** Where the autoscaler adds, removes and measures replicas. */
export interface ReplicaFleet {
  /** Spacing of the load samples, ms (a window is covered when no gap between them is longer). */
  readonly sampleStepMs: number;
  /** How old the newest load sample may be, ms. */
  readonly sampleLagMs: number;
  /** The source's read replicas, with their state. */
  list(): Promise<ReplicaView[]>;
  /** The replicas' average load per sample period in [fromMs, toMs]. */
  load(replicas: ReplicaView[], fromMs: number, toMs: number): Promise<LoadSample[]>;
  /** Requests one more replica; its identifier. */
  add(now: Date): Promise<string>;
  remove(id: string): Promise<void>;
}

/** One CloudWatch period of the AWS/RDS metrics read (the basic resolution: a minute). */
export const METRIC_PERIOD_SECONDS = 60;

/**
 * RDS: the read replicas of the source instance (DescribeDBInstances), their CPUUtilization
 * and DatabaseConnections from CloudWatch (GetMetricData, one call for all), new replicas
 * with CreateDBInstanceReadReplica (the spec's class, the source's subnet group and security
 * groups, tagged `created-by`), removal with
 * DeleteDBInstance (no final snapshot: a replica's data is the primary's).
 */
export class RdsReplicaFleet implements ReplicaFleet {
  readonly sampleStepMs = METRIC_PERIOD_SECONDS * 1000;
  /** CloudWatch publishes RDS's one-minute metrics a few minutes late. */
  readonly sampleLagMs = 5 * 60_000;
  private readonly rds: RDSClient;
  private readonly cloudwatch: CloudWatchClient;

  constructor(
    private readonly config: ReplicaAutoscalingConfig,
    private readonly maxConnections: () => Promise<number>,
  ) {
    const { region, endpoint, cloudwatchEndpoint } = config.rds;
    this.rds = new RDSClient({ region, ...(endpoint ? { endpoint } : {}), maxAttempts: 3 });
    this.cloudwatch = new CloudWatchClient({
      region,
      ...(cloudwatchEndpoint ? { endpoint: cloudwatchEndpoint } : {}),
      maxAttempts: 3,
    });
  }

  private get sourceId(): string {
    const id = this.config.rds.sourceId;
    if (!id) {
      throw new Error('REPLICA_AUTOSCALING_RDS_INSTANCE_ID is not set');
    }
    return id;
  }

  private async describe(id: string): Promise<DBInstance | null> {
    try {
      const out = await this.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
      return out.DBInstances?.[0] ?? null;
    } catch (err) {
      if ((err as { name?: string }).name === 'DBInstanceNotFoundFault') {
        return null;
      }
      throw err;
    }
  }

  async list(): Promise<ReplicaView[]> {
    const source = await this.describe(this.sourceId);
    if (!source) {
      throw new Error(`source DB instance ${this.sourceId} not found`);
    }
    const views: ReplicaView[] = [];
    for (const id of source.ReadReplicaDBInstanceIdentifiers ?? []) {
      const r = await this.describe(id);
      if (!r) {
        continue; // deleted since
      }
      views.push({
        id,
        status: r.DBInstanceStatus ?? 'unknown',
        createdAt: r.InstanceCreateTime ?? null,
        managed: (r.TagList ?? []).some(
          (t) => t.Key === AUTOSCALER_TAG.Key && t.Value === AUTOSCALER_TAG.Value,
        ),
        ...(r.Endpoint?.Address && r.Endpoint.Port
          ? { endpoint: { host: r.Endpoint.Address, port: r.Endpoint.Port } }
          : {}),
      });
    }
    return views;
  }

  async load(replicas: ReplicaView[], fromMs: number, toMs: number): Promise<LoadSample[]> {
    if (replicas.length === 0) {
      return [];
    }
    const query = (id: string, metric: string, i: number): MetricDataQuery => ({
      Id: `${metric === 'CPUUtilization' ? 'cpu' : 'conn'}${i}`,
      MetricStat: {
        Metric: {
          Namespace: 'AWS/RDS',
          MetricName: metric,
          Dimensions: [{ Name: 'DBInstanceIdentifier', Value: id }],
        },
        Period: METRIC_PERIOD_SECONDS,
        Stat: 'Average',
      },
      ReturnData: true,
    });
    const queries = replicas.flatMap((r, i) => [
      query(r.id, 'CPUUtilization', i),
      query(r.id, 'DatabaseConnections', i),
    ]);
    const series = new Map<string, Map<number, number>>();
    let next: string | undefined;
    do {
      const out = await this.cloudwatch.send(
        new GetMetricDataCommand({
          MetricDataQueries: queries,
          StartTime: new Date(fromMs),
          EndTime: new Date(toMs),
          ScanBy: 'TimestampAscending',
          NextToken: next,
        }),
      );
      for (const result of out.MetricDataResults ?? []) {
        const points = series.get(result.Id!) ?? new Map<number, number>();
        (result.Timestamps ?? []).forEach((t, k) => points.set(t.getTime(), result.Values![k]));
        series.set(result.Id!, points);
      }
      next = out.NextToken;
    } while (next);

    const max = await this.maxConnections();
    const stamps = new Set<number>();
    for (const points of series.values()) {
      for (const t of points.keys()) {
        stamps.add(t);
      }
    }
    const samples: LoadSample[] = [];
    for (const t of [...stamps].sort((a, b) => a - b)) {
      const cpu = replicas.map((_, i) => series.get(`cpu${i}`)?.get(t));
      const conns = replicas.map((_, i) => series.get(`conn${i}`)?.get(t));
      // a period some replica has no datapoint for is left out: a gap, not a zero
      if (cpu.some((v) => v === undefined) || conns.some((v) => v === undefined)) {
        continue;
      }
      const avg = (xs: Array<number | undefined>): number =>
        xs.reduce<number>((a, b) => a + (b ?? 0), 0) / xs.length;
      samples.push({
        // a datapoint's timestamp is its period's start; the sample covers up to its end
        at: t + METRIC_PERIOD_SECONDS * 1000,
        cpuPercent: avg(cpu),
        connectionsPercent: (avg(conns) / max) * 100,
      });
    }
    return samples;
  }

  async add(now: Date): Promise<string> {
    const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
    const id = rdsIdentifier(`${this.config.rds.idPrefix}-${stamp}`);
    // Without them a new replica would get the VPC's default security group, which the
    // service and PgBouncer cannot reach: the source's subnet group and security groups.
    const source = await this.describe(this.sourceId);
    const groups = (source?.VpcSecurityGroups ?? [])
      .filter((g) => g.Status === 'active' && g.VpcSecurityGroupId)
      .map((g) => g.VpcSecurityGroupId!);
    const subnetGroup = source?.DBSubnetGroup?.DBSubnetGroupName;
    await this.rds.send(
      new CreateDBInstanceReadReplicaCommand({
        DBInstanceIdentifier: id,
        SourceDBInstanceIdentifier: this.sourceId,
        DBInstanceClass: this.config.rds.instanceClass,
        ...(groups.length > 0 ? { VpcSecurityGroupIds: groups } : {}),
        ...(subnetGroup ? { DBSubnetGroupName: subnetGroup } : {}),
        PubliclyAccessible: false,
        AutoMinorVersionUpgrade: true,
        CopyTagsToSnapshot: true,
        Tags: [SERVICE_TAG, AUTOSCALER_TAG],
      }),
    );
    return id;
  }

  async remove(id: string): Promise<void> {
    await this.rds.send(
      new DeleteDBInstanceCommand({
        DBInstanceIdentifier: id,
        SkipFinalSnapshot: true,
        DeleteAutomatedBackups: true,
      }),
    );
  }

  close(): void {
    this.rds.destroy();
    this.cloudwatch.destroy();
  }
}
