import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import type {
  DatabaseConfig,
  NodeAddress,
  ReplicaAutoscalingConfig,
} from '../../config/app-config.js';
import { CpuEstimator } from '../../monitoring/cpu-estimate.js';
import { directClientConfig, nodeName, withDirectClient } from '../pg-direct.js';
import type { TopologyService } from '../topology.service.js';
import type { ReplicaFleet } from './rds-replica-fleet.js';
import type { LoadSample, ReplicaView } from './replica-autoscaling.policy.js';

const run = promisify(execFile);

/** Identifier of the replica the stack runs on `port` (its data folder is `extra-<port>`). */
export function localReplicaId(port: number): string {
  return `extra-${port}`;
}

function portOf(id: string): number {
  const m = /^extra-(\d+)$/.exec(id);
  if (!m) {
    throw new Error(`not a replica of the local fleet: ${id}`);
  }
  return Number(m[1]);
}

/** Whether something accepts TCP connections on host:port. */
function listening(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (up: boolean): void => {
      socket.destroy();
      done(up);
    };
    socket.setTimeout(timeoutMs, () => finish(true)); // something is there, just slow
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

const LOAD_SQL = `
  SELECT count(*) FILTER (WHERE state = 'active' AND wait_event IS NULL
                                 AND pid <> pg_backend_pid())::int AS on_cpu,
         count(*)::int AS clients,
         current_setting('max_connections')::int AS max_connections
    FROM pg_stat_activity
   WHERE backend_type = 'client backend'`;

/**
 * The local stack as a replica fleet (REPLICA_AUTOSCALING_PROVIDER=local), so the same
 * decision that drives RDS can be watched on real PostgreSQL: replicas are added with
 * `docker/stack.sh add-replica PORT` (pg_basebackup of the writer, streaming with its own
 * slot) on the first free port of REPLICA_AUTOSCALING_LOCAL_PORTS and removed with
 * `drop-replica PORT`. The stack's own replicas (DB_NODES) count towards the bounds and are
 * never removed. Load is read from the replicas at each evaluation, like CloudWatch's
 * per-minute averages but instantaneous: CPU % is client sessions on a CPU (active, waiting on
 * no event: the monitoring's CpuEstimator) per CPU (REPLICA_AUTOSCALING_LOCAL_VCPUS), connections
 * % is client backends of max_connections.
 */
export class LocalStackFleet implements ReplicaFleet {
  readonly sampleStepMs: number;
  readonly sampleLagMs: number;
  private readonly samples: LoadSample[] = [];
  private readonly cpu: CpuEstimator;

  constructor(
    private readonly config: ReplicaAutoscalingConfig,
    private readonly db: DatabaseConfig,
    private readonly topology: TopologyService,
    /** How long samples are kept (the longer of the two windows). */
    private readonly keepMs: number,
  ) {
    this.sampleStepMs = config.intervalMs;
    this.sampleLagMs = 3 * config.intervalMs;
    // one sample per estimate: the policy's window is the averaging
    this.cpu = new CpuEstimator(
      config.local.vcpus > 0 ? config.local.vcpus : availableParallelism(),
      1,
    );
  }

  private get host(): string {
    return this.topology.writerState.lastProbe.address.host;
  }

  private ports(): number[] {
    const { from, to } = this.config.local.ports;
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  }

  async list(): Promise<ReplicaView[]> {
    const views: ReplicaView[] = [];
    const writer = this.topology.writerName;
    const managed = new Set(this.ports().map((p) => nodeName({ host: this.host, port: p })));
    for (const s of this.topology.snapshot()) {
      if (s.name === writer || s.fenced || managed.has(s.name) || s.discovered) {
        continue;
      }
      views.push({
        id: s.name,
        status: s.healthy && s.role === 'replica' ? 'available' : 'unreachable',
        createdAt: null,
        managed: false,
        endpoint: s.lastProbe.address,
      });
    }
    const found = await Promise.all(
      this.ports().map(async (port) => {
        const endpoint = { host: this.host, port };
        try {
          const row = await this.queryOne<{ replica: boolean; started: Date }>(
            endpoint,
            'SELECT pg_is_in_recovery() AS replica, pg_postmaster_start_time() AS started',
          );
          return row.replica
            ? {
                id: localReplicaId(port),
                status: 'available',
                createdAt: row.started,
                managed: true,
                endpoint,
              }
            : null;
        } catch {
          return null; // not running: not part of the fleet (add-replica may reuse the port)
        }
      }),
    );
    return [...views, ...found.filter((v): v is NonNullable<typeof v> => v !== null)];
  }

  /**
   * Samples the replicas now and returns the samples kept for [fromMs, toMs]. A replica that
   * cannot be read makes this evaluation a gap, not a zero.
   */
  async load(replicas: ReplicaView[], fromMs: number, toMs: number): Promise<LoadSample[]> {
    const now = Date.now();
    try {
      const rows = await Promise.all(
        replicas.map((r) =>
          this.queryOne<{ on_cpu: number; clients: number; max_connections: number }>(
            r.endpoint!,
            LOAD_SQL,
          ),
        ),
      );
      const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
      const max = (r: { max_connections: number }): number =>
        this.config.maxConnections > 0 ? this.config.maxConnections : r.max_connections;
      if (rows.length > 0) {
        this.samples.push({
          at: now,
          cpuPercent: avg(rows.map((r, i) => this.cpu.add(replicas[i].id, r.on_cpu) ?? 0)),
          connectionsPercent: avg(rows.map((r) => Math.min(100, (r.clients / max(r)) * 100))),
        });
      }
    } catch {
      // a replica went away between list and load: no sample this time
    }
    while (this.samples.length > 0 && this.samples[0].at < now - this.keepMs - this.sampleLagMs) {
      this.samples.shift();
    }
    return this.samples.filter((s) => s.at >= fromMs && s.at <= toMs);
  }

  /** The first row of `sql` on a short-lived direct connection to `endpoint`. */
  private queryOne<T extends object>(endpoint: NodeAddress, sql: string): Promise<T> {
    return withDirectClient(
      directClientConfig(this.db, endpoint, {
        timeoutMs: this.db.health.timeoutMs,
        applicationName: 'database-unit:autoscaler',
      }),
      async (c) => (await c.query<T & pg.QueryResultRow>(sql)).rows[0],
    );
  }

  async add(): Promise<string> {
    let port: number | undefined;
    for (const p of this.ports()) {
      if (!(await listening(this.host, p, 1_000))) {
        port = p;
        break;
      }
    }
    if (port === undefined) {
      throw new Error(
        `no free port in REPLICA_AUTOSCALING_LOCAL_PORTS ${this.config.local.ports.from}-${this.config.local.ports.to}`,
      );
    }
    await this.stack('add-replica', port);
    this.samples.length = 0; // the fleet changed: its load starts over
    return localReplicaId(port);
  }

  async remove(id: string): Promise<void> {
    await this.stack('drop-replica', portOf(id));
    this.samples.length = 0;
  }

  private async stack(command: string, port: number): Promise<void> {
    const { stackDir, stackScript } = this.config.local;
    const writerPort = this.topology.writerState.lastProbe.address.port;
    try {
      await run('bash', [resolve(stackScript), command, String(port)], {
        env: {
          ...process.env,
          STACK_DIR: resolve(stackDir),
          STACK_PG_PRIMARY_PORT: String(writerPort),
        },
        timeout: 10 * 60_000,
        maxBuffer: 4 << 20,
      });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      const lines = `${e.stdout ?? ''}\n${e.stderr ?? ''}`
        .split('\n')
        .filter((l) => l.trim() !== '');
      const why = lines.filter((l) => l.includes('ERROR')).pop() ?? lines.pop() ?? e.message;
      throw new Error(`${stackScript} ${command} ${port} failed: ${why}`, { cause: err });
    }
  }
}
