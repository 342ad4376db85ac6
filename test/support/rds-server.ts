import { randomUUID } from 'node:crypto';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for AWS RDS speaking its Query protocol (form-encoded `Action=…&Version=2014-10-31`
 * POSTs, XML answers in the real response shapes), for the actions the rds backup provider
 * sends. Every request is recorded with its parameters exactly as sent. Snapshots and restored
 * instances become `available` when the hooks given at start resolve: a test backs them with
 * real pgBackRest backups and real scratch PostgreSQL instances. SigV4 is not verified.
 */
export interface RdsCall {
  action: string;
  params: Record<string, string>;
}

export interface FakeTag {
  Key: string;
  Value: string;
}

export interface FakeSnapshot {
  id: string;
  type: 'manual' | 'automated';
  status: string;
  createdAt: Date;
  tags: FakeTag[];
  allocatedGb: number;
}

export interface FakeInstance {
  id: string;
  status: string;
  tags: FakeTag[];
  endpoint: { host: string; port: number } | null;
  instanceClass: string;
  stop?: () => Promise<void>;
  /** A read replica's source instance. */
  sourceId?: string;
  createdAt?: Date;
}

export interface RdsHooks {
  /** Takes the backup behind snapshot `id` (the snapshot is `creating` until it resolves). */
  snapshot(id: string): Promise<void>;
  /** Restores a real PostgreSQL for a new instance (from a snapshot id, or to a time). */
  restore(
    from: { snapshot: string } | { time: Date },
  ): Promise<{ host: string; port: number; stop: () => Promise<void> }>;
}

export interface RdsServer {
  url: string;
  calls: RdsCall[];
  /** The source instance's settings, changed by tests. */
  source: {
    id: string;
    retentionDays: number;
    window: string;
    earliest: Date;
  };
  snapshots: Map<string, FakeSnapshot>;
  instances: Map<string, FakeInstance>;
  /** Calls of one action, in order. */
  callsOf(action: string): RdsCall[];
  /** The next calls of `action` fail with this error code (one per entry, in order). */
  failNext(action: string, code: string, message: string): void;
  close(): Promise<void>;
}

const NS = 'http://rds.amazonaws.com/doc/2014-10-31/';

const esc = (v: string): string =>
  v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function tagsXml(tags: FakeTag[]): string {
  return `<TagList>${tags.map((t) => `<Tag><Key>${esc(t.Key)}</Key><Value>${esc(t.Value)}</Value></Tag>`).join('')}</TagList>`;
}

/** `Tags.Tag.N.Key/Value` of a request, in order. */
function tagsOf(params: Record<string, string>): FakeTag[] {
  const tags: FakeTag[] = [];
  for (let i = 1; params[`Tags.Tag.${i}.Key`] !== undefined; i += 1) {
    tags.push({ Key: params[`Tags.Tag.${i}.Key`], Value: params[`Tags.Tag.${i}.Value`] ?? '' });
  }
  return tags;
}

class Fault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export async function startRdsServer(sourceId: string, hooks: RdsHooks): Promise<RdsServer> {
  const calls: RdsCall[] = [];
  const injected: Array<{ action: string; code: string; message: string }> = [];
  const snapshots = new Map<string, FakeSnapshot>();
  const instances = new Map<string, FakeInstance>();
  const source = {
    id: sourceId,
    retentionDays: 30,
    window: '03:00-04:00',
    earliest: new Date(Date.now() - 86_400_000),
  };

  const snapshotXml = (s: FakeSnapshot): string =>
    `<DBSnapshot><DBSnapshotIdentifier>${esc(s.id)}</DBSnapshotIdentifier>` +
    `<DBInstanceIdentifier>${esc(source.id)}</DBInstanceIdentifier>` +
    `<SnapshotCreateTime>${s.createdAt.toISOString()}</SnapshotCreateTime>` +
    `<Engine>postgres</Engine><AllocatedStorage>${s.allocatedGb}</AllocatedStorage>` +
    `<Status>${s.status}</Status><PercentProgress>${s.status === 'available' ? 100 : 40}</PercentProgress>` +
    `<SnapshotType>${s.type}</SnapshotType>${tagsXml(s.tags)}</DBSnapshot>`;

  const sourceXml = (): string =>
    `<DBInstance><DBInstanceIdentifier>${esc(source.id)}</DBInstanceIdentifier>` +
    `<DBInstanceClass>db.t3.medium</DBInstanceClass><Engine>postgres</Engine>` +
    `<DBInstanceStatus>available</DBInstanceStatus>` +
    `<BackupRetentionPeriod>${source.retentionDays}</BackupRetentionPeriod>` +
    `<PreferredBackupWindow>${esc(source.window)}</PreferredBackupWindow>` +
    `<LatestRestorableTime>${new Date(Date.now() - 1000).toISOString()}</LatestRestorableTime>` +
    `<Endpoint><Address>source.example.internal</Address><Port>5432</Port></Endpoint>` +
    `<VpcSecurityGroups><VpcSecurityGroupMembership><VpcSecurityGroupId>sg-0database</VpcSecurityGroupId><Status>active</Status></VpcSecurityGroupMembership>` +
    `<VpcSecurityGroupMembership><VpcSecurityGroupId>sg-0retired</VpcSecurityGroupId><Status>removing</Status></VpcSecurityGroupMembership></VpcSecurityGroups>` +
    `<DBSubnetGroup><DBSubnetGroupName>prod-dbu-isolated</DBSubnetGroupName></DBSubnetGroup>` +
    `<ReadReplicaDBInstanceIdentifiers>${[...instances.values()]
      .filter((i) => i.sourceId === source.id)
      .map((i) => `<ReadReplicaDBInstanceIdentifier>${esc(i.id)}</ReadReplicaDBInstanceIdentifier>`)
      .join('')}</ReadReplicaDBInstanceIdentifiers>` +
    `${tagsXml([])}</DBInstance>`;

  const instanceXml = (i: FakeInstance): string =>
    `<DBInstance><DBInstanceIdentifier>${esc(i.id)}</DBInstanceIdentifier>` +
    `<DBInstanceClass>${esc(i.instanceClass)}</DBInstanceClass><Engine>postgres</Engine>` +
    `<DBInstanceStatus>${i.status}</DBInstanceStatus>` +
    (i.createdAt ? `<InstanceCreateTime>${i.createdAt.toISOString()}</InstanceCreateTime>` : '') +
    (i.sourceId
      ? `<ReadReplicaSourceDBInstanceIdentifier>${esc(i.sourceId)}</ReadReplicaSourceDBInstanceIdentifier>`
      : '') +
    (i.endpoint
      ? `<Endpoint><Address>${i.endpoint.host}</Address><Port>${i.endpoint.port}</Port></Endpoint>`
      : '') +
    `${tagsXml(i.tags)}</DBInstance>`;

  const startRestore = (i: FakeInstance, from: { snapshot: string } | { time: Date }): void => {
    hooks.restore(from).then(
      (r) => {
        i.stop = r.stop;
        if (i.status === 'deleting') {
          void r.stop();
          return;
        }
        i.endpoint = { host: r.host, port: r.port };
        i.status = 'available';
      },
      () => {
        i.status = 'failed';
      },
    );
  };

  const newInstance = (id: string, params: Record<string, string>): FakeInstance => {
    if (instances.has(id) || id === source.id) {
      throw new Fault('DBInstanceAlreadyExists', `DB instance ${id} already exists`);
    }
    const i: FakeInstance = {
      id,
      status: 'creating',
      tags: tagsOf(params),
      endpoint: null,
      instanceClass: params.DBInstanceClass ?? 'db.t3.medium',
      createdAt: new Date(),
    };
    instances.set(id, i);
    return i;
  };

  const actions: Record<string, (p: Record<string, string>) => string> = {
    CreateDBSnapshot: (p) => {
      if (p.DBInstanceIdentifier !== source.id) {
        throw new Fault(
          'DBInstanceNotFound',
          `DBInstance ${p.DBInstanceIdentifier} not found.`,
          404,
        );
      }
      const s: FakeSnapshot = {
        id: p.DBSnapshotIdentifier,
        type: 'manual',
        status: 'creating',
        createdAt: new Date(),
        tags: tagsOf(p),
        allocatedGb: 100,
      };
      snapshots.set(s.id, s);
      hooks.snapshot(s.id).then(
        () => {
          s.status = 'available';
        },
        () => {
          s.status = 'failed';
        },
      );
      return snapshotXml(s);
    },
    DescribeDBSnapshots: (p) => {
      if (p.DBSnapshotIdentifier && !snapshots.has(p.DBSnapshotIdentifier)) {
        throw new Fault(
          'DBSnapshotNotFound',
          `DBSnapshot ${p.DBSnapshotIdentifier} not found.`,
          404,
        );
      }
      const list = [...snapshots.values()].filter(
        (s) =>
          (!p.DBSnapshotIdentifier || s.id === p.DBSnapshotIdentifier) &&
          (!p.SnapshotType || s.type === p.SnapshotType),
      );
      return `<DBSnapshots>${list.map(snapshotXml).join('')}</DBSnapshots>`;
    },
    DeleteDBSnapshot: (p) => {
      const s = snapshots.get(p.DBSnapshotIdentifier);
      if (!s) {
        throw new Fault(
          'DBSnapshotNotFound',
          `DBSnapshot ${p.DBSnapshotIdentifier} not found.`,
          404,
        );
      }
      snapshots.delete(s.id);
      s.status = 'deleted';
      return snapshotXml(s);
    },
    DescribeDBInstances: (p) => {
      const id = p.DBInstanceIdentifier;
      if (id === source.id) {
        return `<DBInstances>${sourceXml()}</DBInstances>`;
      }
      if (id && !instances.has(id)) {
        throw new Fault('DBInstanceNotFound', `DBInstance ${id} not found.`, 404);
      }
      const list = id ? [instances.get(id)!] : [...instances.values()];
      return `<DBInstances>${id ? '' : sourceXml()}${list.map(instanceXml).join('')}</DBInstances>`;
    },
    DescribeDBInstanceAutomatedBackups: () =>
      `<DBInstanceAutomatedBackups><DBInstanceAutomatedBackup>` +
      `<DBInstanceIdentifier>${esc(source.id)}</DBInstanceIdentifier><Status>active</Status>` +
      `<RestoreWindow><EarliestTime>${source.earliest.toISOString()}</EarliestTime>` +
      `<LatestTime>${new Date().toISOString()}</LatestTime></RestoreWindow>` +
      `</DBInstanceAutomatedBackup></DBInstanceAutomatedBackups>`,
    RestoreDBInstanceFromDBSnapshot: (p) => {
      if (!snapshots.has(p.DBSnapshotIdentifier)) {
        throw new Fault(
          'DBSnapshotNotFound',
          `DBSnapshot ${p.DBSnapshotIdentifier} not found.`,
          404,
        );
      }
      const i = newInstance(p.DBInstanceIdentifier, p);
      startRestore(i, { snapshot: p.DBSnapshotIdentifier });
      return instanceXml(i);
    },
    RestoreDBInstanceToPointInTime: (p) => {
      const i = newInstance(p.TargetDBInstanceIdentifier, p);
      startRestore(i, { time: new Date(p.RestoreTime) });
      return instanceXml(i);
    },
    // a replica stays `creating` until a test makes it `available` (instances.get(id).status)
    CreateDBInstanceReadReplica: (p) => {
      if (p.SourceDBInstanceIdentifier !== source.id) {
        throw new Fault(
          'DBInstanceNotFound',
          `DBInstance ${p.SourceDBInstanceIdentifier} not found.`,
          404,
        );
      }
      const i = newInstance(p.DBInstanceIdentifier, p);
      i.sourceId = source.id;
      i.instanceClass = p.DBInstanceClass ?? 'db.t3.medium';
      return instanceXml(i);
    },
    DeleteDBInstance: (p) => {
      const i = instances.get(p.DBInstanceIdentifier);
      if (!i) {
        throw new Fault(
          'DBInstanceNotFound',
          `DBInstance ${p.DBInstanceIdentifier} not found.`,
          404,
        );
      }
      i.status = 'deleting';
      const xml = instanceXml(i);
      instances.delete(i.id);
      void i.stop?.();
      return xml;
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) {
      chunks.push(c as Buffer);
    }
    const params = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    const action = params.Action ?? '(none)';
    calls.push({ action, params });
    const requestId = randomUUID();
    try {
      const planned = injected.findIndex((f) => f.action === action);
      if (planned >= 0) {
        const [f] = injected.splice(planned, 1);
        throw new Fault(f.code, f.message);
      }
      const fn = actions[action];
      if (!fn || params.Version !== '2014-10-31') {
        throw new Fault(
          'InvalidAction',
          `unsupported action ${action} (version ${params.Version})`,
        );
      }
      const body = fn(params);
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<${action}Response xmlns="${NS}"><${action}Result>${body}</${action}Result>` +
          `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`,
      );
    } catch (err) {
      const f =
        err instanceof Fault ? err : new Fault('InternalFailure', (err as Error).message, 500);
      res.writeHead(f.status, { 'content-type': 'text/xml' });
      res.end(
        `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${f.code}</Code>` +
          `<Message>${esc(f.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    source,
    snapshots,
    instances,
    callsOf: (action) => calls.filter((c) => c.action === action),
    failNext: (action, code, message) => {
      injected.push({ action, code, message });
    },
    close: () => new Promise((done) => server.close(() => done())),
  };
}
