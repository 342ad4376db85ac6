import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { buildDataSourceOptions, RouteTargets } from './data-source.js';
import { AdvisoryLock, LOCK_NAMESPACE } from './locks.js';
import { setMigrationContext } from './migration-context.js';
import { directClientConfig, withDirectClient } from './pg-direct.js';
import { chooseWriter, NodeProbe, probeNode } from './topology.js';

const logger = new Logger('DatabaseBoot');

export interface BootTopology {
  probes: NodeProbe[];
  writer: NodeProbe;
  replicas: NodeProbe[];
  fenced: NodeProbe[];
}

export class NoWriterError extends Error {
  constructor(probes: NodeProbe[]) {
    super(
      `no writable primary among ${probes.map((p) => `${p.name} (${p.reachable ? p.role : `unreachable: ${p.error ?? 'unknown error'}`})`).join(', ')}`,
    );
    this.name = 'NoWriterError';
  }
}

export async function probeAll(config: AppConfig, timeoutMs: number): Promise<NodeProbe[]> {
  return Promise.all(config.database.nodes.map((n) => probeNode(config.database, n, timeoutMs)));
}

/**
 * Discovers roles of the configured nodes; waits (up to DB_BOOT_TIMEOUT_MS) for a
 * writer, so a service started together with its database does not crash-loop.
 */
export async function discoverTopology(config: AppConfig): Promise<BootTopology> {
  const deadline = Date.now() + config.database.bootTimeoutMs;
  let attempt = 0;
  for (;;) {
    attempt += 1;
    const probes = await probeAll(config, Math.min(config.database.health.timeoutMs, 5_000));
    const { writer, fenced } = chooseWriter(probes);
    if (writer) {
      const replicas = probes.filter((p) => p.reachable && p.role === 'replica');
      const unreachable = probes.filter((p) => !p.reachable).map((p) => p.name);
      logger.log(
        {
          writer: writer.name,
          timeline: writer.timeline,
          replicas: replicas.map((r) => r.name),
          unreachable,
          fenced: fenced.map((f) => f.name),
        },
        'topology discovered',
      );
      // Unreachable nodes are kept as read targets: they are probably replicas that
      // will come back, and the read router skips them while they are down.
      const readable = probes.filter(
        (p) => p !== writer && !fenced.includes(p) && p.role !== 'primary',
      );
      return { probes, writer, replicas: readable, fenced };
    }
    if (Date.now() >= deadline) {
      throw new NoWriterError(probes);
    }
    if (attempt === 1 || attempt % 10 === 0) {
      logger.warn({ attempt, nodes: probes.map((p) => p.name) }, 'waiting for a writable primary');
    }
    await sleep(1_000);
  }
}

export function routeTargets(topology: BootTopology): RouteTargets {
  return { writer: topology.writer.address, replicas: topology.replicas.map((r) => r.address) };
}

/**
 * Runs `work` on a plain DataSource on the writer (direct, never through PgBouncer),
 * connected as the schema's owner (DB_MIGRATION_USER), while holding the migrations
 * advisory lock, so instances that start together migrate once and the others wait,
 * then find nothing left to do.
 */
async function withMigrationLock<T>(
  config: AppConfig,
  topology: BootTopology,
  work: (ds: DataSource) => Promise<T>,
): Promise<T> {
  const lockConfig = {
    ...directClientConfig(config.database, topology.writer.address, {
      applicationName: 'database-unit:migrations',
    }),
    user: config.database.migrationUser,
    password: config.database.migrationPassword,
  };
  return withDirectClient(lockConfig, async (lockClient) => {
    const started = Date.now();
    await lockClient.query('SELECT pg_advisory_lock($1, $2)', [
      LOCK_NAMESPACE,
      AdvisoryLock.Migrations,
    ]);
    const waited = Date.now() - started;
    if (waited > 1_000) {
      logger.log({ waitedMs: waited }, 'waited for another instance to finish migrating');
    }
    try {
      const { options } = buildDataSourceOptions(config, routeTargets(topology), {
        direct: true,
        writerOnly: true,
        asOwner: true,
      });
      const ds = new DataSource(options);
      await ds.initialize();
      try {
        return await work(ds);
      } finally {
        await ds.destroy();
      }
    } finally {
      await lockClient.query('SELECT pg_advisory_unlock($1, $2)', [
        LOCK_NAMESPACE,
        AdvisoryLock.Migrations,
      ]);
    }
  });
}

/** Applies pending migrations; returns the names applied by this call. */
export function runMigrationsLocked(config: AppConfig, topology: BootTopology): Promise<string[]> {
  return withMigrationLock(config, topology, async (ds) => {
    setMigrationContext({ config, topology });
    const ran = await ds
      .runMigrations({ transaction: 'each' })
      .finally(() => setMigrationContext(null));
    logger.log({ ran: ran.map((m) => m.name), database: config.database.name }, 'migrations done');
    return ran.map((m) => m.name);
  });
}

/** Reverts the last applied migration (its `down()`). */
export function revertLastMigrationLocked(
  config: AppConfig,
  topology: BootTopology,
): Promise<void> {
  return withMigrationLock(config, topology, async (ds) => {
    setMigrationContext({ config, topology });
    await ds.undoLastMigration({ transaction: 'each' }).finally(() => setMigrationContext(null));
  });
}
