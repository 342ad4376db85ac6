import {
  CreateDBSnapshotCommand,
  DBInstance,
  DBSnapshot,
  DeleteDBInstanceCommand,
  DeleteDBSnapshotCommand,
  DescribeDBInstanceAutomatedBackupsCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
  RestoreDBInstanceFromDBSnapshotCommand,
  RestoreDBInstanceToPointInTimeCommand,
  Tag,
} from '@aws-sdk/client-rds';
import { Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { BackupConfig, DatabaseConfig, RdsBackupConfig } from '../config/app-config.js';
import { sslOption } from '../database/pg-direct.js';
import type {
  BackupKind,
  BackupProvider,
  ProviderBackup,
  RecoveryTarget,
  RecoveryWindow,
  RestoredInstance,
  RestoreOptions,
  SettingsDrift,
} from './backup.types.js';
import { BackupType } from './backup.types.js';
import {
  CREATED_BY_TAG_VALUE,
  DEAD_END_STATES,
  expiredSnapshots,
  ours,
  rdsIdentifier,
  RdsTag,
  SERVICE_TAG_VALUE,
  settingsDrift,
  snapshotIdentifier,
  tagValue,
  toProviderBackup,
} from './rds.mapping.js';
import type { DetailedRecoveryWindow } from './recovery-window.js';

/** The highest LSN: RDS windows are by time only; an LSN target is refused before this. */
const ANY_LSN = 'FFFFFFFF/FFFFFFFF';

export class RdsProviderError extends Error {}

/**
 * AWS RDS: manual snapshots (CreateDBSnapshot, tagged, deleted by us past the weekly
 * retention), RDS's automated backups (checked against the configured retention and
 * window), and temporary DB instances restored from a snapshot or to a point in time for
 * validations and restores, deleted without a final snapshot. Credentials come from the
 * SDK's default chain only.
 */
export class RdsProvider implements BackupProvider {
  readonly name = 'rds' as const;
  private readonly logger = new Logger(RdsProvider.name);
  private readonly rds: RdsBackupConfig;
  private readonly instanceId: string;

  constructor(
    private readonly config: BackupConfig,
    private readonly ssl: DatabaseConfig['ssl'],
    private readonly client: RDSClient = new RDSClient({
      region: config.rds.region,
      ...(config.rds.endpoint ? { endpoint: config.rds.endpoint } : {}),
    }),
  ) {
    this.rds = config.rds;
    if (!config.rds.instanceId) {
      throw new RdsProviderError('BACKUP_RDS_INSTANCE_ID is required with BACKUP_PROVIDER=rds');
    }
    this.instanceId = config.rds.instanceId;
  }

  /** A manual snapshot of the source instance, tagged; then the expired ones of ours go. */
  async backup(_type: BackupType, kind: BackupKind = 'on-demand'): Promise<ProviderBackup> {
    const id = snapshotIdentifier(this.instanceId, kind, new Date());
    this.logger.log({ snapshot: id, instance: this.instanceId, kind }, 'rds: creating snapshot');
    await this.client.send(
      new CreateDBSnapshotCommand({
        DBInstanceIdentifier: this.instanceId,
        DBSnapshotIdentifier: id,
        Tags: this.tags({ [RdsTag.Kind]: kind }),
      }),
    );
    const snapshot = await this.waitFor(`snapshot ${id}`, async () => {
      const out = await this.client.send(
        new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: id }),
      );
      const s = out.DBSnapshots?.[0];
      return { status: s?.Status ?? 'missing', progress: s?.PercentProgress, value: s };
    });
    const set = toProviderBackup(snapshot!);
    if (!set) {
      throw new RdsProviderError(
        `snapshot ${id} is available but incomplete in DescribeDBSnapshots`,
      );
    }
    await this.applyRetention();
    return set;
  }

  /** Manual and automated snapshots of the source instance that are available, oldest first. */
  async list(): Promise<ProviderBackup[]> {
    return (await this.snapshots())
      .map(toProviderBackup)
      .filter((b): b is ProviderBackup => b !== null)
      .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  }

  /** Deletes our manual snapshots older than BACKUP_WEEKLY_RETENTION_WEEKS; returns their ids. */
  async applyRetention(now = new Date()): Promise<string[]> {
    const expired = expiredSnapshots(
      await this.snapshots('manual'),
      now,
      this.config.retention.weeklyWeeks,
    );
    const deleted: string[] = [];
    for (const s of expired) {
      await this.client.send(
        new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: s.DBSnapshotIdentifier }),
      );
      deleted.push(s.DBSnapshotIdentifier!);
    }
    if (deleted.length > 0) {
      this.logger.log(
        { deleted, weeks: this.config.retention.weeklyWeeks },
        'rds: snapshots past retention deleted',
      );
    }
    return deleted;
  }

  /** Point-in-time window of the automated backups (RestoreWindow) up to LatestRestorableTime. */
  async recoveryWindow(): Promise<RecoveryWindow> {
    const instance = await this.source();
    const automated = await this.client.send(
      new DescribeDBInstanceAutomatedBackupsCommand({ DBInstanceIdentifier: this.instanceId }),
    );
    const earliest = (automated.DBInstanceAutomatedBackups ?? [])
      .map((b) => b.RestoreWindow?.EarliestTime)
      .filter((t): t is Date => t !== undefined)
      .sort((a, b) => a.getTime() - b.getTime())[0];
    const latest = instance.LatestRestorableTime ?? null;
    return { from: earliest ?? null, to: earliest ? latest : null, gaps: [] };
  }

  async detailedWindow(): Promise<DetailedRecoveryWindow> {
    const w = await this.recoveryWindow();
    const ranges =
      w.from && w.to ? [{ from: w.from, to: w.to, fromLsn: '0/0', toLsn: ANY_LSN }] : [];
    return { ...w, ranges, gapDetails: [], newest: w.to };
  }

  /** RDS uploads the WAL of its automated backups itself (every 5 minutes): nothing to force. */
  archiveNow(): Promise<string | null> {
    return Promise.resolve(null);
  }

  /** BackupRetentionPeriod and PreferredBackupWindow of the source against the config. */
  async checkSettings(): Promise<SettingsDrift[]> {
    return settingsDrift(await this.source(), this.rds.expected);
  }

  /**
   * A temporary DB instance of the test class: from the snapshot (backup targets; RDS restores
   * a snapshot to its own point, a manifest LSN cannot be applied) or to a point in time.
   */
  async restore(target: RecoveryTarget, opts: RestoreOptions): Promise<RestoredInstance> {
    const restoreStartedAt = new Date();
    const id = rdsIdentifier(`${opts.name}-${randomBytes(3).toString('hex')}`);
    const purpose = opts.purpose;
    const common = {
      DBInstanceClass: this.rds.testInstanceClass,
      StorageType: this.rds.testStorageType,
      MultiAZ: false,
      PubliclyAccessible: false,
      DeletionProtection: false,
      ...(this.rds.subnetGroup ? { DBSubnetGroupName: this.rds.subnetGroup } : {}),
      ...(this.rds.securityGroups.length > 0
        ? { VpcSecurityGroupIds: this.rds.securityGroups }
        : {}),
      Tags: this.tags({ [RdsTag.Purpose]: purpose }),
    };
    switch (target.kind) {
      case 'backup':
        await this.client.send(
          new RestoreDBInstanceFromDBSnapshotCommand({
            ...common,
            DBInstanceIdentifier: id,
            DBSnapshotIdentifier: target.label,
          }),
        );
        break;
      case 'time':
        await this.client.send(
          new RestoreDBInstanceToPointInTimeCommand({
            ...common,
            SourceDBInstanceIdentifier: this.instanceId,
            TargetDBInstanceIdentifier: id,
            RestoreTime: target.time,
          }),
        );
        break;
      case 'lsn':
        throw new RdsProviderError('RDS restores to a time or a snapshot, not to an LSN');
    }
    this.logger.log(
      { instance: id, target: target.kind, purpose },
      'rds: temporary instance restoring',
    );
    const instance = new RdsInstance(this, id, restoreStartedAt);
    try {
      await opts.onPrepared?.(id);
      const ready = await this.waitFor(`instance ${id}`, async () => {
        const found = await this.describeInstance(id);
        return { status: found?.DBInstanceStatus ?? 'missing', value: found };
      });
      if (!ready?.Endpoint?.Address || !ready.Endpoint.Port) {
        throw new RdsProviderError(`instance ${id} is available without an endpoint`);
      }
      instance.ready(ready.Endpoint.Address, ready.Endpoint.Port);
      return instance;
    } catch (err) {
      await instance
        .stop()
        .catch((e: Error) =>
          this.logger.error(
            { instance: id, error: e.message },
            'rds: could not delete the temporary instance',
          ),
        );
      throw err;
    }
  }

  /** The user the checks use, over TCP with the service's TLS mode (never logged). */
  connectionFor(
    _ref: string,
    host: string | null,
    port: number | null,
    database: string,
  ): pg.ClientConfig {
    return {
      host: host ?? undefined,
      port: port ?? undefined,
      user: this.rds.dbUser,
      password: this.rds.dbPassword,
      database,
      ssl: sslOption(this.ssl),
    };
  }

  /** DeleteDBInstance without a final snapshot, automated backups with it; gone already is fine. */
  async removeRestored(ref: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteDBInstanceCommand({
          DBInstanceIdentifier: ref,
          SkipFinalSnapshot: true,
          DeleteAutomatedBackups: true,
        }),
      );
      this.logger.log({ instance: ref }, 'rds: temporary instance deleted');
    } catch (err) {
      if ((err as { name?: string }).name === 'DBInstanceNotFoundFault') {
        return;
      }
      throw err;
    }
  }

  /** Temporary instances tagged ours, named `prefix…`, not in `keep`: deleted. */
  async removeOrphans(prefix: string, keep: Set<string>): Promise<string[]> {
    const start = rdsIdentifier(prefix);
    const removed: string[] = [];
    for (const i of await this.instances()) {
      const id = i.DBInstanceIdentifier;
      if (
        !id ||
        id === this.instanceId ||
        !id.startsWith(start) ||
        keep.has(id) ||
        !ours(i.TagList) ||
        !tagValue(i.TagList, RdsTag.Purpose) ||
        i.DBInstanceStatus === 'deleting'
      ) {
        continue;
      }
      await this.removeRestored(id);
      removed.push(id);
    }
    return removed;
  }

  /** RDS checks its snapshots itself; there is no repository copy to verify. */
  verify(): Promise<null> {
    return Promise.resolve(null);
  }

  async describeInstance(id: string): Promise<DBInstance | undefined> {
    try {
      const out = await this.client.send(
        new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }),
      );
      return out.DBInstances?.[0];
    } catch (err) {
      if ((err as { name?: string }).name === 'DBInstanceNotFoundFault') {
        return undefined;
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------

  private tags(extra: Record<string, string>): Tag[] {
    return [
      { Key: RdsTag.Service, Value: SERVICE_TAG_VALUE },
      { Key: RdsTag.CreatedBy, Value: CREATED_BY_TAG_VALUE },
      ...Object.entries(extra).map(([Key, Value]) => ({ Key, Value })),
    ];
  }

  private async source(): Promise<DBInstance> {
    const found = await this.describeInstance(this.instanceId);
    if (!found) {
      throw new RdsProviderError(`RDS instance ${this.instanceId} not found`);
    }
    return found;
  }

  private async snapshots(type?: 'manual' | 'automated'): Promise<DBSnapshot[]> {
    const types = type ? [type] : (['manual', 'automated'] as const);
    const all: DBSnapshot[] = [];
    for (const SnapshotType of types) {
      let Marker: string | undefined;
      do {
        const out = await this.client.send(
          new DescribeDBSnapshotsCommand({
            DBInstanceIdentifier: this.instanceId,
            SnapshotType,
            Marker,
          }),
        );
        all.push(...(out.DBSnapshots ?? []));
        Marker = out.Marker;
      } while (Marker);
    }
    return all;
  }

  private async instances(): Promise<DBInstance[]> {
    const all: DBInstance[] = [];
    let Marker: string | undefined;
    do {
      const out = await this.client.send(new DescribeDBInstancesCommand({ Marker }));
      all.push(...(out.DBInstances ?? []));
      Marker = out.Marker;
    } while (Marker);
    return all;
  }

  /** Polls until `available` (bounded by BACKUP_RDS_WAIT_MINUTES), logging each change. */
  private async waitFor<T>(
    what: string,
    poll: () => Promise<{ status: string; progress?: number; value: T }>,
  ): Promise<T> {
    const deadline = Date.now() + this.rds.waitMs;
    let last = '';
    for (;;) {
      const { status, progress, value } = await poll();
      const state = `${status}${progress === undefined ? '' : ` ${progress}%`}`;
      if (state !== last) {
        this.logger.log({ what, status, progress }, 'rds: waiting');
        last = state;
      }
      if (status === 'available') {
        return value;
      }
      if (DEAD_END_STATES.has(status) || status === 'missing') {
        throw new RdsProviderError(`${what} is ${status}`);
      }
      if (Date.now() > deadline) {
        throw new RdsProviderError(
          `${what} not available after ${this.rds.waitMs / 60_000} min (last status ${status})`,
        );
      }
      await sleep(this.rds.pollMs);
    }
  }
}

/** A temporary RDS instance; `stop()` deletes it (SkipFinalSnapshot, DeleteAutomatedBackups). */
export class RdsInstance implements RestoredInstance {
  host = '';
  port = 0;
  readyAt = new Date(0);
  private stopped = false;

  constructor(
    private readonly provider: RdsProvider,
    readonly ref: string,
    readonly restoreStartedAt: Date,
  ) {}

  ready(host: string, port: number): void {
    this.host = host;
    this.port = port;
    this.readyAt = new Date();
  }

  clientConfig(database: string): pg.ClientConfig {
    return this.provider.connectionFor(this.ref, this.host, this.port, database);
  }

  async alive(): Promise<boolean> {
    return (await this.provider.describeInstance(this.ref))?.DBInstanceStatus === 'available';
  }

  logTail(): Promise<string> {
    return Promise.resolve(`(RDS instance ${this.ref}: see its postgresql log in the RDS console)`);
  }

  async stop(): Promise<void> {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    await this.provider.removeRestored(this.ref);
  }
}
