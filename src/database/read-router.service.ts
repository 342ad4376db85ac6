import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import pg from 'pg';
import { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DependencyUnavailableError } from '../common/errors.js';
import { RequestContext, RequestContextStore } from '../common/request-context.js';
import { isCatalogRaceError, isNodeDownError } from './node-errors.js';
import { NODE_OF, nodeOfRunner } from './node-of.js';
import { destroySocket, directClientConfig } from './pg-direct.js';
import {
  LocalSettings,
  localSettingsStatement,
  Rows,
  runStatementBatch,
  Statement,
} from './statement-batch.js';
import { lsnToBigInt } from './topology.js';
import { ROUTE_LABELS } from './database.tokens.js';
import { TopologyService } from './topology.service.js';

type Release = (err?: unknown) => void;

/**
 * Sends `statements` in one round trip as one read-only transaction, with `settings`
 * (SET LOCAL) applied to them; resolves to each statement's rows.
 */
export type ReadBatch = (statements: Statement[], settings?: LocalSettings) => Promise<Rows[]>;
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
  /**
   * Node names behind each read label (direct mode: the node itself; PgBouncer: every replica,
   * since the service cannot tell which one PgBouncer's read entry reaches).
   */
  readNodes: string[][];
}

/** No writer can take writes now (failover in progress, or the writer is down): 503 + Retry-After. */
export class WriterUnavailableError extends DependencyUnavailableError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** The write may or may not have committed: the client must not assume either (503). */
export class WriteOutcomeUnknownError extends DependencyUnavailableError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

const SYNC_REP_CANCELLED = /canceling wait for synchronous replication/i;

/**
 * The seam between TypeORM and our routing: TypeORM asks its driver for a "master"
 * or a "slave" connection; this service answers instead of the driver. Writes go to
 * the current writer (it follows promotions); reads go round-robin over replicas
 * that are healthy, not fenced and within the lag bound, and — when the request
 * carries a write LSN — have replayed it; otherwise the writer serves them.
 */
@Injectable()
export class ReadRouterService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ReadRouterService.name);
  private next = 0;
  private driver!: PgDriverInternals;
  /** Direct pools per node name (TypeORM's own for the boot nodes, created for others). */
  private readonly pools = new Map<string, pg.Pool>();
  private readonly ownPools: pg.Pool[] = [];
  private bootWriter = '';
  private viaPgBouncer = false;
  /** Set by the failover controller: writes answer 503 + Retry-After meanwhile. */
  writesBlocked: string | null = null;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ROUTE_LABELS) private readonly labels: RouteLabels,
    private readonly topology: TopologyService,
  ) {}

  onModuleInit(): void {
    const driver = this.dataSource.driver as unknown as PgDriverInternals;
    this.driver = driver;
    this.bootWriter = this.topology.writerName;
    this.viaPgBouncer = this.labels.writeLabel.startsWith('pgbouncer/');
    if (!this.viaPgBouncer) {
      this.pools.set(this.labels.writeLabel, driver.master);
      this.labels.readLabels.forEach((label, i) => this.pools.set(label, driver.slaves[i]));
    }
    const toMaster = driver.obtainMasterConnection.bind(driver);
    driver.obtainMasterConnection = () => this.obtainWrite(toMaster);
    driver.obtainSlaveConnection = () => this.obtainRead();
    this.topology.on((e) => {
      if (e.kind === 'node-removed') {
        this.closePool(e.node);
      }
    });
  }

  /** A removed replica's own pool: no new reads; closed once the reads in flight end. */
  private closePool(name: string): void {
    const pool = this.pools.get(name);
    const own = pool ? this.ownPools.indexOf(pool) : -1;
    if (!pool || own < 0) {
      return;
    }
    this.pools.delete(name);
    this.ownPools.splice(own, 1);
    void pool
      .end()
      .then(() => this.logger.log({ node: name }, 'pool of a removed replica closed'))
      .catch((err: Error) =>
        this.logger.warn(
          { node: name, error: err.message },
          'closing a removed replica pool failed',
        ),
      );
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all(this.ownPools.map((p) => p.end().catch(() => undefined)));
  }

  private async obtainWrite(toMaster: () => Promise<Obtained>): Promise<Obtained> {
    const retryAfter = this.config.database.failover.retryAfterSeconds;
    if (this.writesBlocked) {
      throw new WriterUnavailableError(this.writesBlocked, retryAfter);
    }
    const writer = this.topology.writerName;
    try {
      const started = performance.now();
      const viaBouncer = this.viaPgBouncer && writer === this.bootWriter;
      const obtained = viaBouncer ? await toMaster() : await connect(this.poolFor(writer));
      this.onAcquire?.(
        viaBouncer ? this.labels.writeLabel : writer,
        (performance.now() - started) / 1000,
      );
      NODE_OF.set(obtained[0], writer);
      this.markServed(
        'primary',
        this.viaPgBouncer && writer === this.bootWriter ? this.labels.writeLabel : writer,
      );
      return obtained;
    } catch (err) {
      if (isNodeDownError(err)) {
        this.topology.recordFailure(writer, (err as Error).message, undefined, true);
        this.logger.warn({ writer, error: (err as Error).message }, 'the writer is unreachable');
        throw new WriterUnavailableError('the primary database is unreachable; retry', retryAfter);
      }
      throw err;
    }
  }

  private async obtainRead(): Promise<Obtained> {
    const ctx = RequestContextStore.get();
    const master = (): Promise<Obtained> => this.driver.obtainMasterConnection();
    if (this.readsOnWriter(ctx)) {
      return master();
    }
    const candidates = this.topology.readCandidates();
    if (candidates.length === 0) {
      return master();
    }
    if (this.viaPgBouncer) {
      // PgBouncer mode: the read entry (PGBOUNCER_DB_RO) is one target. Which server backs it
      // is PgBouncer's configuration: the shipped ones name one replica (PgBouncer round-robins
      // only when an entry lists several hosts). Replicas discovered at run time are not in
      // that configuration: each is a target of its own, read directly.
      const viaBouncer = candidates.filter((n) => !this.topology.isDiscovered(n));
      const targets: Array<{ nodes: string[]; pool: () => pg.Pool; label: string }> = [];
      if (viaBouncer.length > 0 && this.driver.slaves.length > 0) {
        targets.push({
          nodes: viaBouncer,
          pool: () => this.driver.slaves[0],
          label: this.labels.readLabels[0],
        });
      }
      for (const name of candidates.filter((n) => this.topology.isDiscovered(n))) {
        targets.push({ nodes: [name], pool: () => this.poolFor(name), label: name });
      }
      const first = this.next++;
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(first + i) % targets.length];
        const got = await this.tryReplica(t.pool(), t.nodes, t.label, ctx);
        if (got) {
          return got;
        }
      }
      return master();
    }
    const start = this.next++ % candidates.length;
    for (let i = 0; i < candidates.length; i++) {
      const name = candidates[(start + i) % candidates.length];
      const got = await this.tryReplica(this.poolFor(name), [name], name, ctx);
      if (got) {
        return got;
      }
    }
    return master();
  }

  /** A connection to a replica that can serve this read, or null (try elsewhere). */
  private async tryReplica(
    pool: pg.Pool,
    nodes: string[],
    label: string,
    ctx: RequestContext | undefined,
  ): Promise<Obtained | null> {
    let obtained: Obtained;
    try {
      const started = performance.now();
      obtained = await connect(pool);
      this.onAcquire?.(label, (performance.now() - started) / 1000);
    } catch (err) {
      if (!isNodeDownError(err)) {
        throw err;
      }
      for (const node of nodes) {
        this.topology.recordFailure(node, (err as Error).message, undefined, true);
      }
      this.logger.warn(
        { replica: label, error: (err as Error).message },
        'replica unavailable, rerouting read',
      );
      return null;
    }
    // The caller's floor: one round trip to check it, unless a probe or an earlier check
    // already saw every node that may be behind this connection replay it (through
    // PgBouncer: any node but the writer, whatever the service thinks of its health).
    const behind =
      this.viaPgBouncer && label === this.labels.readLabels[0]
        ? this.topology
            .names()
            .filter((n) => n !== this.topology.writerName && !this.topology.isDiscovered(n))
        : nodes;
    if (ctx?.minLsn && !this.topology.knownReplayed(behind, ctx.minLsn)) {
      try {
        const res = await obtained[0].query<{ lsn: string | null }>(
          'SELECT pg_last_wal_replay_lsn()::text AS lsn',
        );
        const replayed = res.rows[0]?.lsn;
        if (!replayed || lsnToBigInt(replayed) < lsnToBigInt(ctx.minLsn)) {
          obtained[1]();
          return null;
        }
        if (nodes.length === 1) {
          this.topology.noteReplayed(nodes[0], replayed);
        }
      } catch (err) {
        obtained[1](err);
        if (isNodeDownError(err)) {
          return null;
        }
        throw err;
      }
    }
    NODE_OF.set(obtained[0], nodes.length === 1 ? nodes[0] : label);
    this.markServed('replica', label);
    return obtained;
  }

  private poolFor(name: string): pg.Pool {
    let pool = this.pools.get(name);
    if (!pool) {
      const state = this.topology.snapshot().find((s) => s.name === name);
      if (!state) {
        throw new Error(`unknown node ${name}`);
      }
      const db = this.config.database;
      pool = new pg.Pool({
        ...directClientConfig(db, state.lastProbe.address, { timeoutMs: db.connectTimeoutMs }),
        query_timeout: db.queryTimeoutMs,
        max: db.pool.default,
        idleTimeoutMillis: 30_000,
      });
      pool.on('error', (err) =>
        this.logger.warn({ node: name, error: err.message }, 'pooled connection lost'),
      );
      this.pools.set(name, pool);
      this.ownPools.push(pool);
    }
    return pool;
  }

  private markServed(role: 'primary' | 'replica', node: string): void {
    const ctx = RequestContextStore.get();
    if (ctx) {
      ctx.servedBy = { role, node };
    }
  }

  /**
   * Runs `fn` on a read connection chosen by the routing rules above. A read that
   * fails because its replica died is retried once elsewhere, transparently.
   */
  async read<T>(fn: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.withReadRetry(async () => {
      const runner = this.dataSource.createQueryRunner('slave');
      try {
        return await fn(runner.manager);
      } catch (err) {
        throw tagNode(err, runner);
      } finally {
        await runner.release();
      }
    });
  }

  /**
   * Runs `fn` in one read-only transaction on a read connection, so `SET LOCAL`
   * settings (e.g. hnsw.ef_search, statement_timeout) stay inside it — safe through
   * PgBouncer transaction pooling. Retried once elsewhere if the replica died.
   */
  readTransaction<T>(
    fn: (manager: EntityManager) => Promise<T>,
    opts: { onWriter?: boolean } = {},
  ): Promise<T> {
    return this.withReadRetry(async () => {
      const runner = this.dataSource.createQueryRunner(opts.onWriter ? 'master' : 'slave');
      try {
        await runner.query('BEGIN READ ONLY');
        const result = await fn(runner.manager);
        await runner.query('COMMIT');
        return result;
      } catch (err) {
        if (runner.connection && !runner.isReleased && !isNodeDownError(err)) {
          await runner
            .query('ROLLBACK')
            .catch((rollbackErr: Error) =>
              this.logger.warn(
                { error: rollbackErr.message },
                'rollback of a read transaction failed',
              ),
            );
        }
        throw tagNode(err, runner);
      } finally {
        await runner.release();
      }
    });
  }

  /**
   * Runs `fn` on one read connection chosen by the routing rules above, for reads that
   * need settings of their own: each `batch(statements, settings)` is one round trip
   * and one read-only implicit transaction (runStatementBatch) instead of BEGIN,
   * SET LOCAL, the statements and COMMIT one by one. Nothing outlives a batch, so it is
   * safe through PgBouncer's transaction pooling. Retried once elsewhere if the replica
   * died; slow and failed batches are logged like TypeORM's statements.
   */
  readBatches<T>(
    fn: (batch: ReadBatch) => Promise<T>,
    opts: { onWriter?: boolean } = {},
  ): Promise<T> {
    return this.withReadRetry(async () => {
      const runner = this.dataSource.createQueryRunner(opts.onWriter ? 'master' : 'slave');
      try {
        const client = (await RequestContextStore.timed('acquire', () =>
          runner.connect(),
        )) as pg.PoolClient;
        const batch: ReadBatch = async (statements, settings = {}) => {
          const all = [
            localSettingsStatement({ transaction_read_only: 'on', ...settings }),
            ...statements,
          ];
          const started = performance.now();
          try {
            const rows = await runStatementBatch(client, all);
            const ms = performance.now() - started;
            RequestContextStore.addTiming('db', ms);
            const max = this.dataSource.options.maxQueryExecutionTime;
            if (max && ms > max) {
              this.dataSource.logger.logQuerySlow(ms, batchSql(all), undefined, runner);
            }
            return rows.slice(1);
          } catch (err) {
            this.dataSource.logger.logQueryError(
              err as Error,
              batchSql(all),
              all.flatMap((s) => s.params ?? []),
              runner,
            );
            throw err;
          }
        };
        return await fn(batch);
      } catch (err) {
        throw tagNode(err, runner);
      } finally {
        await runner.release();
      }
    });
  }

  private async withReadRetry<T>(attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      const node = (err as { dbuNode?: string }).dbuNode;
      if (isCatalogRaceError(err)) {
        this.logger.warn(
          { node, error: (err as Error).message },
          'read raced a replayed catalog change (an index dropped under it); retrying once',
        );
        return attempt();
      }
      if (!isNodeDownError(err) || !node || node === this.topology.writerName) {
        throw err;
      }
      this.topology.recordFailure(node, (err as Error).message, undefined, true);
      this.logger.warn(
        { replica: node, error: (err as Error).message },
        'read failed on a dead replica; retrying once elsewhere',
      );
      return attempt();
    }
  }

  /**
   * Runs `fn` in one transaction on the writer. The commit's outcome must be known:
   * a connection lost during COMMIT, or a commit whose wait for the synchronous
   * standby was cancelled (PostgreSQL then commits locally and only warns), answers
   * 503 — never 2xx. Afterwards the request carries the writer's LSN (`x-write-lsn`)
   * and its later reads only use nodes that replayed it.
   */
  async write<T>(fn: (manager: EntityManager) => Promise<T>): Promise<T> {
    const retryAfter = this.config.database.failover.retryAfterSeconds;
    const runner = this.dataSource.createQueryRunner('master');
    const notices: string[] = [];
    const onNotice = (n: { message?: string }): void => {
      notices.push(n.message ?? '');
    };
    let client: pg.PoolClient | null = null;
    let writerNode: string | undefined;
    // A connection that timed out or failed mid-statement may still be busy on the
    // server (e.g. a COMMIT waiting for a standby): it must not go back to the pool.
    let poisoned = false;
    try {
      let result: T;
      try {
        client = (await runner.connect()) as pg.PoolClient;
        writerNode = NODE_OF.get(client);
        client.on('notice', onNotice);
        await runner.startTransaction();
        result = await fn(runner.manager);
        await this.markIdempotentWrite(runner.manager);
      } catch (err) {
        if (isNodeDownError(err)) {
          poisoned = true;
          // Nothing was committed: safe to retry.
          this.topology.recordFailure(
            this.topology.writerName,
            (err as Error).message,
            undefined,
            true,
          );
          // The driver's message stays in the log: responses carry no library or node detail.
          this.logger.warn(
            { writer: writerNode ?? this.topology.writerName, error: (err as Error).message },
            'the writer failed during a transaction; nothing was committed',
          );
          throw new WriterUnavailableError(
            'the primary database failed during the transaction; nothing was committed, retry',
            retryAfter,
          );
        }
        if (runner.isTransactionActive && !runner.isReleased) {
          await runner
            .rollbackTransaction()
            .catch((rollbackErr: Error) =>
              this.logger.warn({ error: rollbackErr.message }, 'rollback failed'),
            );
        }
        throw err;
      }
      try {
        await runner.commitTransaction();
      } catch (err) {
        if (isNodeDownError(err)) {
          poisoned = true;
          throw new WriteOutcomeUnknownError(
            'the connection to the writer was lost during COMMIT: the write may or may not have been applied',
            retryAfter,
          );
        }
        throw err;
      }
      if (notices.some((m) => SYNC_REP_CANCELLED.test(m))) {
        this.logger.error(
          { writer: this.topology.writerName },
          'a commit was not confirmed by the synchronous standby (wait cancelled): answering 503',
        );
        throw new WriteOutcomeUnknownError(
          'the write was not confirmed by the synchronous standby; it may be lost on failover',
          retryAfter,
        );
      }
      await this.rememberWriteLsn(runner);
      return result;
    } finally {
      client?.off('notice', onNotice);
      if (poisoned && client) {
        destroySocket(client);
      }
      await runner.release();
    }
  }

  /** With an Idempotency-Key, the key is marked committed in the writing transaction. */
  private async markIdempotentWrite(m: EntityManager): Promise<void> {
    const idem = RequestContextStore.get()?.idempotency;
    if (idem) {
      await m.query(
        `UPDATE idempotency_keys SET committed = true WHERE api_key_id = $1 AND key = $2 AND NOT committed`,
        [idem.apiKeyId, idem.key],
      );
    }
  }

  private async rememberWriteLsn(runner: { query(sql: string): Promise<unknown> }): Promise<void> {
    const ctx = RequestContextStore.get();
    if (!ctx) {
      return;
    }
    const rows = (await runner.query('SELECT pg_current_wal_lsn()::text AS lsn')) as Array<{
      lsn: string;
    }>;
    const lsn = rows[0]?.lsn;
    if (lsn && (!ctx.minLsn || lsnToBigInt(lsn) > lsnToBigInt(ctx.minLsn))) {
      ctx.minLsn = lsn;
    }
    ctx.writeLsn = lsn;
  }

  /** Every pool this service uses, by label (node name, or PgBouncer entry). */
  allPools(): Array<{ label: string; pool: pg.Pool }> {
    const out = new Map<string, pg.Pool>(this.pools);
    if (this.viaPgBouncer) {
      out.set(this.labels.writeLabel, this.driver.master);
      this.labels.readLabels.forEach((l, i) => out.set(l, this.driver.slaves[i]));
    }
    return [...out.entries()].map(([label, pool]) => ({ label, pool }));
  }

  /** Seconds spent waiting for pooled connections, by pool label (pool controller). */
  onAcquire?: (label: string, seconds: number) => void;

  /** `x-consistency: strong`, or `DB_READ_DEFAULT=primary` unless the caller asked for `eventual`. */
  private readsOnWriter(ctx: RequestContext | undefined): boolean {
    const consistency = ctx?.consistency ?? 'default';
    if (consistency === 'default') {
      return this.config.database.readDefault === 'primary';
    }
    return consistency === 'strong';
  }
}

/** A batch's statements as one text, for the slow-query and error logs. */
function batchSql(statements: Statement[]): string {
  return statements.map((s) => s.sql).join(';\n');
}

/** Remembers on the error which node the failed runner was connected to. */
function tagNode(err: unknown, runner: QueryRunner): unknown {
  const node = nodeOfRunner(runner);
  if (node && err && typeof err === 'object') {
    (err as { dbuNode?: string }).dbuNode = node;
  }
  return err;
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

export { isNodeDownError };
