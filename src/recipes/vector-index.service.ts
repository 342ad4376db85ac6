import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { AppConfig, NodeAddress } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DomainError, ErrorCode } from '../common/errors.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { JobRunsRepository } from '../database/job-runs.repository.js';
import { AdvisoryLock, LOCK_NAMESPACE } from '../database/locks.js';
import { directClientConfig } from '../database/pg-direct.js';
import { TopologyService } from '../database/topology.service.js';
import { HNSW_INDEX } from './recipes.constants.js';
import { SearchFilters, SearchPlan } from './search-plan.js';
import { SearchRepository } from './search.repository.js';
import { SearchMetrics } from './search.metrics.js';
import { SearchService } from './search.service.js';
import { parallelWorkersFor } from './vector-index.js';
import { indexColumn, storageOfDefinition, type VectorStorage } from './vector-storage.js';

export enum VectorJob {
  Rebuild = 'vector-index-rebuild',
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

export interface ExplainReport {
  /** The plan the search reports (and its metrics are labelled with). */
  plan: SearchPlan;
  /** The index scan came back short of `limit`; the explained statement is the exact scan after it. */
  exactFallback: boolean;
  indexUsed: boolean;
  indexName: string | null;
  nodeTypes: string[];
  rowsScanned: number | null;
  rowsRemovedByFilter: number;
  rowsReturned: number;
  buffers: { sharedHit: number; sharedRead: number };
  planningMs: number;
  executionMs: number;
  settings: { efSearch: number; limit: number; maxDistance: number; filtered: boolean };
  explained: unknown;
}

/** Cosine distance is at most 2: a representative EXPLAIN cuts nothing unless asked to. */
const NO_DISTANCE_BOUND = 2;

/** The spec's HNSW `m` (the migration's). */
const HNSW_M = 16;

/** The new index of a VECTOR_STORAGE switch until it takes the old one's name. */
const CONVERT_INDEX = `${HNSW_INDEX}_convert`;

/** Beyond one index refresh interval, before a storage switch drops the old index. */
const SWITCH_MARGIN_MS = 5_000;

/** pgvector's ef_construction when the index has no reloption for it. */
const HNSW_DEFAULT_EF_CONSTRUCTION = 64;

/** Query-plan analysis, index size, and online rebuilds of the HNSW index. */
@Injectable()
export class VectorIndexService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(VectorIndexService.name);
  private timer?: NodeJS.Timeout;
  private rebuilding: Promise<void> | null = null;
  private warnedStorage = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly searches: SearchRepository,
    private readonly search: SearchService,
    private readonly metrics: SearchMetrics,
    private readonly topology: TopologyService,
    private readonly runs: JobRunsRepository,
    private readonly leadership: JobLeadershipService,
  ) {
    // what the index most likely holds until the first refresh reads it
    this.searches.indexStorage = config.vector.storage;
  }

  onModuleInit(): void {
    void this.refreshIndex();
    this.timer = setInterval(() => void this.refreshIndex(), this.config.vector.indexRefreshMs);
    this.timer.unref();
  }

  /**
   * Reads the HNSW indexes on recipes: the size metric, and the storage searches must
   * order by to use an index (SearchRepository.indexStorage). The configured storage
   * when an index of that storage is valid, else the storage of the index there is:
   * during a switch of VECTOR_STORAGE both exist, and every instance moves to the new
   * one within this refresh interval, before the rebuild drops the old one.
   */
  async refreshIndex(): Promise<void> {
    try {
      const indexes = await this.searches.hnswIndexes();
      const main = indexes.find((i) => i.name === HNSW_INDEX) ?? indexes[0];
      if (main) {
        this.metrics.indexSize.set(main.sizeBytes);
      }
      const wanted = this.config.vector.storage;
      const storage: VectorStorage | null = indexes.some((i) => i.storage === wanted)
        ? wanted
        : (main?.storage ?? null);
      if (storage !== null && storage !== this.searches.indexStorage) {
        this.logger.log(
          { from: this.searches.indexStorage, to: storage },
          'searches follow the HNSW index storage',
        );
        this.searches.indexStorage = storage;
      }
      if (storage !== null && storage !== wanted && !this.warnedStorage) {
        this.warnedStorage = true;
        this.logger.warn(
          { configured: wanted, index: storage },
          'VECTOR_STORAGE differs from the HNSW index: searches use the index as it is until POST /v1/ops/vector-index/rebuild converts it',
        );
      }
    } catch (err) {
      this.logger.debug({ error: (err as Error).message }, 'index state not available');
    }
  }

  /**
   * EXPLAIN (ANALYZE, BUFFERS) of a representative search (a stored embedding), run
   * exactly as a search with these filters would run, summarised. `plan` is what that
   * search reports; `indexUsed` is what PostgreSQL did.
   */
  async explain(
    filters: SearchFilters,
    limit: number,
    maxDistance = NO_DISTANCE_BOUND,
  ): Promise<ExplainReport> {
    const embedding = await this.searches.sampleEmbedding();
    if (!embedding) {
      throw new DomainError(
        ErrorCode.Conflict,
        'no recipe has an embedding yet: nothing to explain',
      );
    }
    const tuning = this.search.tuning(limit);
    const { plan, exactFallback, explained } = await this.searches.explain(
      { embedding, filters, limit, maxDistance },
      tuning,
    );
    const top = explained[0] as unknown as {
      Plan: PlanNode;
      'Planning Time': number;
      'Execution Time': number;
    };
    const nodes: PlanNode[] = [];
    const walk = (n: PlanNode): void => {
      nodes.push(n);
      n.Plans?.forEach(walk);
    };
    walk(top.Plan);
    // the index has a suffix for a moment while VECTOR_STORAGE is switched
    const indexNode = nodes.find((n) => n['Index Name']?.startsWith(HNSW_INDEX));
    return {
      plan,
      exactFallback,
      indexUsed: indexNode !== undefined,
      indexName: indexNode?.['Index Name'] ?? null,
      nodeTypes: nodes.map((n) => n['Node Type']),
      rowsScanned: indexNode
        ? (indexNode['Actual Rows'] ?? 0) * (indexNode['Actual Loops'] ?? 1) +
          (indexNode['Rows Removed by Filter'] ?? 0)
        : null,
      rowsRemovedByFilter: nodes.reduce((sum, n) => sum + (n['Rows Removed by Filter'] ?? 0), 0),
      rowsReturned: top.Plan['Actual Rows'] ?? 0,
      buffers: {
        sharedHit: top.Plan['Shared Hit Blocks'] ?? 0,
        sharedRead: top.Plan['Shared Read Blocks'] ?? 0,
      },
      planningMs: top['Planning Time'],
      executionMs: top['Execution Time'],
      settings: {
        efSearch: tuning.efSearch,
        limit,
        maxDistance,
        filtered: Object.keys(filters).length > 0,
      },
      explained,
    };
  }

  /**
   * Starts `REINDEX INDEX CONCURRENTLY` on the writer (reads and writes go on) and
   * returns the job-run id to poll. One rebuild at a time across the fleet.
   */
  async startRebuild(): Promise<string> {
    if (this.rebuilding) {
      throw new DomainError(
        ErrorCode.Conflict,
        'an index rebuild is already running on this instance',
      );
    }
    const writer = this.topology.snapshot().find((n) => n.name === this.topology.writerName);
    if (!writer) {
      throw new DomainError(ErrorCode.DependencyUnavailable, 'no writer known');
    }
    const client = new pg.Client(
      directClientConfig(this.config.database, writer.lastProbe.address, {
        applicationName: 'database-unit:reindex',
        // REINDEX may run for minutes.
        noQueryTimeout: true,
      }),
    );
    client.on('error', (err) =>
      this.logger.warn({ error: err.message }, 'reindex connection error'),
    );
    await client.connect();
    try {
      const lock = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_lock($1, $2) AS ok',
        [LOCK_NAMESPACE, AdvisoryLock.VectorIndexRebuild],
      );
      if (!lock.rows[0]?.ok) {
        throw new DomainError(
          ErrorCode.Conflict,
          'an index rebuild is already running in the fleet',
        );
      }
    } catch (err) {
      await client.end();
      throw err;
    }
    const runId = await this.runs.start(VectorJob.Rebuild, this.leadership.instanceId);
    this.rebuilding = this.rebuild(client, runId, writer.lastProbe.address).finally(() => {
      this.rebuilding = null;
    });
    return runId;
  }

  private async rebuild(client: pg.Client, runId: string, writer: NodeAddress): Promise<void> {
    const started = performance.now();
    try {
      const ext = await client.query<{ extversion: string }>(
        `SELECT extversion FROM pg_extension WHERE extname = 'vector'`,
      );
      const version = ext.rows[0]?.extversion ?? '0';
      const workers = parallelWorkersFor(version, this.config.vector.parallelWorkers);
      if (workers < this.config.vector.parallelWorkers) {
        this.logger.warn(
          { pgvector: version },
          'pgvector < 0.8.2: rebuilding the HNSW index without parallel workers',
        );
      }
      await this.buildSettings(client, workers);
      // A crashed earlier REINDEX CONCURRENTLY leaves an invalid copy behind.
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${HNSW_INDEX}_ccnew`);
      let from = await this.currentStorage(client);
      if (from === null && (await this.exists(client, CONVERT_INDEX))) {
        // a conversion stopped between dropping the old index and renaming the new one
        await client.query(`ALTER INDEX ${CONVERT_INDEX} RENAME TO ${HNSW_INDEX}`);
        from = await this.currentStorage(client);
      }
      if (from === null) {
        throw new Error(`${HNSW_INDEX} does not exist: the migrations create it`);
      }
      const efConstruction = await this.applyEfConstruction(client, runId);
      const to = this.config.vector.storage;
      this.logger.log(
        {
          runId,
          workers,
          maintenanceWorkMem: this.config.vector.maintenanceWorkMem,
          efConstruction,
          storage: from === to ? to : `${from} -> ${to}`,
        },
        'HNSW rebuild started',
      );
      if (from === to) {
        // a conversion that failed before its swap leaves its new index behind
        await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${CONVERT_INDEX}`);
        await client.query(`REINDEX INDEX CONCURRENTLY ${HNSW_INDEX}`);
      } else {
        await this.convert(writer, runId, to, efConstruction, workers);
      }
      const seconds = (performance.now() - started) / 1000;
      this.metrics.indexBuildSeconds.set(seconds);
      await this.refreshIndex();
      await this.runs.finish(runId, 'succeeded', {
        seconds,
        workers,
        pgvector: version,
        storage: this.config.vector.storage,
      });
      this.logger.log({ runId, seconds }, 'HNSW rebuild finished');
    } catch (err) {
      const message = (err as Error).message;
      this.logger.error({ runId, error: message }, 'HNSW rebuild failed');
      await this.runs.finish(runId, 'failed', { error: message });
    } finally {
      await client
        .end()
        .catch((err: Error) =>
          this.logger.warn({ error: err.message }, 'closing reindex connection'),
        );
    }
  }

  /** The build's memory and workers, for this session's index builds. */
  private async buildSettings(c: pg.Client, workers: number): Promise<void> {
    await c.query(`SELECT set_config('maintenance_work_mem', $1, false)`, [
      this.config.vector.maintenanceWorkMem,
    ]);
    await c.query(`SELECT set_config('max_parallel_maintenance_workers', $1, false)`, [
      String(workers),
    ]);
  }

  private async exists(client: pg.Client, index: string): Promise<boolean> {
    const { rows } = await client.query<{ ok: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL AS ok`,
      [index],
    );
    return rows[0]?.ok === true;
  }

  private async currentStorage(client: pg.Client): Promise<VectorStorage | null> {
    const { rows } = await client.query<{ def: string | null }>(
      `SELECT pg_get_indexdef(to_regclass($1)) AS def`,
      [HNSW_INDEX],
    );
    return rows[0]?.def ? storageOfDefinition(rows[0].def) : null;
  }

  /**
   * A rebuild that changes VECTOR_STORAGE: the new index is built beside the old one
   * (CREATE INDEX CONCURRENTLY: reads and writes go on), then the old one stays for one
   * index refresh interval and a margin, while every instance moves its searches to the
   * new one (refreshIndex), then it is dropped and the new one takes its name.
   */
  private async convert(
    writer: NodeAddress,
    runId: string,
    storage: VectorStorage,
    efConstruction: number,
    workers: number,
  ): Promise<void> {
    const db = this.config.database;
    if (db.migrationPassword === undefined) {
      throw new Error(
        'switching VECTOR_STORAGE builds a new index, which needs CREATE on the schema: set DB_MIGRATION_USER and DB_MIGRATION_PASSWORD (the owner role) where the rebuild runs',
      );
    }
    // CREATE INDEX needs CREATE on the schema, which the service's role has not
    const owner = new pg.Client({
      ...directClientConfig(db, writer, {
        applicationName: 'database-unit:reindex',
        noQueryTimeout: true,
      }),
      user: db.migrationUser,
      password: db.migrationPassword,
    });
    owner.on('error', (err) =>
      this.logger.warn({ error: err.message }, 'index conversion connection error'),
    );
    await owner.connect();
    try {
      await this.buildSettings(owner, workers);
      const next = CONVERT_INDEX;
      // a crashed earlier conversion leaves an invalid or unused copy behind
      await owner.query(`DROP INDEX CONCURRENTLY IF EXISTS ${next}`);
      // identifiers and integers from constants and validated config: nothing from a request
      await owner.query(
        `CREATE INDEX CONCURRENTLY ${next} ON recipes USING hnsw (${indexColumn(storage)})
           WITH (m = ${HNSW_M}, ef_construction = ${efConstruction})`,
      );
      const graceMs = this.config.vector.indexRefreshMs + SWITCH_MARGIN_MS;
      this.logger.log(
        { runId, storage, graceMs },
        'HNSW index of the new storage built; the old one is dropped once every instance uses the new one',
      );
      await this.refreshIndex();
      await sleep(graceMs);
      await owner.query(`DROP INDEX CONCURRENTLY ${HNSW_INDEX}`);
      await owner.query(`ALTER INDEX ${next} RENAME TO ${HNSW_INDEX}`);
    } finally {
      await owner
        .end()
        .catch((err: Error) =>
          this.logger.warn({ error: err.message }, 'closing index conversion connection'),
        );
    }
  }

  /**
   * Gives the index the configured `ef_construction` (VECTOR_EF_CONSTRUCTION) before it
   * is rebuilt: a reloption only, which REINDEX CONCURRENTLY copies to the new index.
   * ALTER INDEX … SET takes an exclusive lock on the index for an instant; it waits at
   * most `lock_timeout` behind running searches (and then the rebuild fails, retryable).
   */
  private async applyEfConstruction(client: pg.Client, runId: string): Promise<number> {
    const wanted = this.config.vector.efConstruction;
    const current = await client.query<{ ef: string | null }>(
      `SELECT (SELECT split_part(o, '=', 2) FROM unnest(c.reloptions) o
                WHERE o LIKE 'ef_construction=%') AS ef
         FROM pg_class c WHERE c.oid = to_regclass($1)`,
      [HNSW_INDEX],
    );
    const was = Number(current.rows[0]?.ef ?? HNSW_DEFAULT_EF_CONSTRUCTION);
    if (was !== wanted) {
      await client.query(`SET lock_timeout = '5s'`);
      // an integer from validated config: no identifier or literal from a request
      await client.query(`ALTER INDEX ${HNSW_INDEX} SET (ef_construction = ${wanted})`);
      await client.query(`RESET lock_timeout`);
      this.logger.log({ runId, from: was, to: wanted }, 'HNSW ef_construction changed');
    }
    return wanted;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
    }
    if (this.rebuilding) {
      this.logger.warn('waiting for the running index rebuild to finish before exiting');
      await this.rebuilding;
    }
  }
}
