import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type pg from 'pg';
import { DataSource, EntityManager } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { RequestContextStore } from '../common/request-context.js';
import { ROUTE_LABELS } from './database.tokens.js';
import { TopologyService } from './topology.service.js';

type Release = (err?: unknown) => void;
type Obtained = [pg.PoolClient, Release];

interface PgDriverInternals {
  master: pg.Pool;
  slaves: pg.Pool[];
  obtainMasterConnection(): Promise<Obtained>;
  obtainSlaveConnection(): Promise<Obtained>;
}

export interface RouteLabels {
  writeLabel: string;
  readLabels: string[];
  /** Node names behind each read label (direct mode: the node itself; PgBouncer: every replica). */
  readNodes: string[][];
}

/** Connection errors that mean "this node is gone", not "this query is wrong". */
export function isNodeDownError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      '57P01',
      '57P02',
      '57P03',
      '08006',
      '08001',
    ].includes(e?.code ?? '') ||
    /Connection terminated|connection timeout|the database system is (shutting down|starting up)/i.test(
      e?.message ?? '',
    )
  );
}

/**
 * The seam between TypeORM and our routing: TypeORM asks its driver for a "slave"
 * connection for every read outside a transaction; this service answers instead
 * of the driver's random pick. Strong-consistency requests read from the writer;
 * other reads go round-robin over healthy replicas, and to the writer when none is.
 */
@Injectable()
export class ReadRouterService implements OnModuleInit {
  private readonly logger = new Logger(ReadRouterService.name);
  private next = 0;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ROUTE_LABELS) private readonly labels: RouteLabels,
    private readonly topology: TopologyService,
  ) {}

  onModuleInit(): void {
    const driver = this.dataSource.driver as unknown as PgDriverInternals;
    const toMaster = driver.obtainMasterConnection.bind(driver);
    driver.obtainMasterConnection = async () => {
      const obtained = await toMaster();
      this.markServed('primary', this.labels.writeLabel);
      return obtained;
    };
    driver.obtainSlaveConnection = () => this.obtainRead(driver);
  }

  private async obtainRead(driver: PgDriverInternals): Promise<Obtained> {
    const ctx = RequestContextStore.get();
    if (ctx?.consistency === 'strong' || driver.slaves.length === 0) {
      return driver.obtainMasterConnection();
    }
    const tried = new Set<number>();
    for (let i = 0; i < driver.slaves.length; i++) {
      const index = this.pickReplica(driver.slaves.length, tried);
      if (index === null) {
        break;
      }
      tried.add(index);
      try {
        const obtained = await connect(driver.slaves[index]);
        this.markServed('replica', this.labels.readLabels[index]);
        return obtained;
      } catch (err) {
        if (!isNodeDownError(err)) {
          throw err;
        }
        for (const node of this.labels.readNodes[index] ?? []) {
          this.topology.recordFailure(node, (err as Error).message, undefined, true);
        }
        this.logger.warn(
          { replica: this.labels.readLabels[index], error: (err as Error).message },
          'replica unavailable, rerouting read',
        );
      }
    }
    return driver.obtainMasterConnection();
  }

  private pickReplica(count: number, tried: Set<number>): number | null {
    for (let step = 0; step < count; step++) {
      const index = (this.next + step) % count;
      if (tried.has(index)) {
        continue;
      }
      const nodes = this.labels.readNodes[index] ?? [];
      if (nodes.length > 0 && nodes.some((n) => this.topology.isHealthy(n))) {
        this.next = (index + 1) % count;
        return index;
      }
    }
    return null;
  }

  private markServed(role: 'primary' | 'replica', node: string): void {
    const ctx = RequestContextStore.get();
    if (ctx) {
      ctx.servedBy = { role, node };
    }
  }

  /** Runs `fn` on a read connection chosen by the routing rules above. */
  async read<T>(fn: (manager: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner('slave');
    try {
      return await fn(runner.manager);
    } finally {
      await runner.release();
    }
  }

  /**
   * Runs `fn` in one read-only transaction on a read connection, so `SET LOCAL`
   * settings (e.g. hnsw.ef_search, statement_timeout) stay inside it — safe through
   * PgBouncer transaction pooling.
   */
  async readTransaction<T>(
    fn: (manager: EntityManager) => Promise<T>,
    opts: { onWriter?: boolean } = {},
  ): Promise<T> {
    const runner = this.dataSource.createQueryRunner(opts.onWriter ? 'master' : 'slave');
    try {
      await runner.query('BEGIN READ ONLY');
      const result = await fn(runner.manager);
      await runner.query('COMMIT');
      return result;
    } catch (err) {
      if (runner.connection && !runner.isReleased) {
        await runner
          .query('ROLLBACK')
          .catch((rollbackErr: Error) =>
            this.logger.warn(
              { error: rollbackErr.message },
              'rollback of a read transaction failed',
            ),
          );
      }
      throw err;
    } finally {
      await runner.release();
    }
  }

  /** Runs `fn` in one transaction on the writer. */
  write<T>(fn: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(fn);
  }

  get readDefault(): AppConfig['database']['readDefault'] {
    return this.config.database.readDefault;
  }
}

function connect(pool: pg.Pool): Promise<Obtained> {
  return new Promise((resolve, reject) => {
    pool.connect((err, client, release) => {
      if (err || !client) {
        reject(err ?? new Error('no client'));
      } else {
        resolve([client, release as Release]);
      }
    });
  });
}
