import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { execFile } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource, EntityManager } from 'typeorm';
import { BackgroundTasks } from '../common/background-tasks.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobLeadershipService } from '../database/job-leadership.service.js';
import { libpqSslEnv } from '../database/pg-direct.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { ErasureService } from '../gdpr/erasure.service.js';
import { BackupValidationMetrics } from './backup-validation.metrics.js';
import { archiveNow } from './archive-now.js';
import { BACKUP_PROVIDER } from './backup-provider.factory.js';
import { ValidationCheck } from './backup.types.js';
import type {
  BackupManifest,
  BackupProvider,
  RestoredInstance,
  ScratchInstance,
} from './backup.types.js';
import { BackupsOffError } from './backups.service.js';
import { asOsUser } from './pgbackrest.cli.js';
import { lsnToBigInt } from './recovery-window.js';
import { diffChecksums, exactNeighbours, tableChecksums } from './table-checksums.js';
import { BackupRow, ValidationRepository, ValidationRow } from './validation.repository.js';

const run = promisify(execFile);
const PERF_RUNS = 5;
/** Live timings below this are compared as this: a few ms are noise on a busy host. */
const PERF_FLOOR_MS = 5;
const ORPHAN_ERROR = 'the service stopped during the validation';

export interface CheckResult {
  type: ValidationCheck;
  passed: boolean;
  details: Record<string, unknown>;
}

export interface ValidationReport {
  backupId: string;
  label: string;
  targetLsn: string;
  checks: CheckResult[];
  erasure: {
    usersErased: number;
    keysDestroyed: number;
    leftovers: unknown[];
    passed: boolean;
  } | null;
  restoreSeconds: number | null;
  totalSeconds: number;
}

export interface ValidationResponseDto {
  id: string;
  backupId: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
  report: ValidationReport | null;
}

/** Was the process that wrote `instanceId` (`host:pid:rand`) still alive on this host? */
export function instanceAlive(instanceId: string | null, own: string): boolean {
  if (!instanceId) {
    return false;
  }
  if (instanceId === own) {
    return true;
  }
  const [host, pid] = instanceId.split(':');
  if (host !== hostname()) {
    return true; // another machine's: not ours to judge
  }
  try {
    process.kill(Number(pid), 0);
    // NOTE: a reused pid would look alive; the random suffix cannot be checked from here.
    return Number(pid) !== process.pid;
  } catch {
    return false;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Restore validation: the backup is restored into a scratch instance up to its manifest's
 * LSN and the spec's four checks run there; the erasure ledger is then re-applied on the
 * copy. The scratch instance is removed on success and failure, and at boot when the
 * service died during a validation. The backup's verdict is `good` only if all passed.
 */
@Injectable()
export class ValidationService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ValidationService.name);
  private readonly tasks = new BackgroundTasks(this.logger);
  /** Test seam: runs between the restore and the checks (fault injection). */
  beforeChecks?: (scratch: RestoredInstance) => Promise<void>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BACKUP_PROVIDER) private readonly provider: BackupProvider | null,
    private readonly repository: ValidationRepository,
    private readonly leadership: JobLeadershipService,
    private readonly router: ReadRouterService,
    private readonly erasure: ErasureService,
    private readonly metrics: BackupValidationMetrics,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.provider) {
      return;
    }
    await this.cleanupOrphans().catch((err: Error) =>
      this.logger.error({ error: err.message }, 'temporary instance orphan cleanup failed'),
    );
    const last = await this.repository.lastPassed();
    if (last) {
      this.metrics.lastGoodValidation.set(new Date(last).getTime() / 1000);
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.tasks.drain();
  }

  /**
   * Validations and restores left running by a dead process fail; their temporary
   * instances go (scratch folders, or RDS instances tagged ours), and so does any
   * temporary instance of this database that no live row owns.
   */
  async cleanupOrphans(): Promise<void> {
    const provider = this.mustProvider();
    const own = this.leadership.instanceId;
    for (const v of await this.repository.runningValidations()) {
      if (instanceAlive(v.instanceId, own)) {
        continue;
      }
      if (v.scratchDir) {
        await provider.removeRestored(v.scratchDir);
      }
      await this.repository.failOrphanValidation(v.id, ORPHAN_ERROR);
      this.logger.warn(
        { validation: v.id, dir: v.scratchDir },
        'orphaned validation failed and removed',
      );
    }
    for (const r of await this.repository.runningRestores()) {
      if (instanceAlive(r.instanceId, own)) {
        continue;
      }
      if (r.scratchDir) {
        await provider.removeRestored(r.scratchDir);
      }
      await this.repository.restoreFailed(r.id, 'the service stopped during the restore');
    }
    const keep = new Set(await this.repository.liveScratchDirs());
    const removed = await provider.removeOrphans(`${this.database}-`, keep);
    if (removed.length > 0) {
      this.logger.warn({ removed }, 'removed temporary instances without an owner');
    }
  }

  /** POST /v1/backups/:id/validations: starts one in the background. */
  async request(backupId: string): Promise<{ id: string }> {
    this.mustProvider();
    const backup = await this.repository.backup(backupId);
    if (!backup) {
      throw new NotFoundError('backup', backupId);
    }
    if (backup.status !== 'succeeded' || !backup.label || !backup.manifest) {
      throw new DomainError(
        ErrorCode.Conflict,
        `backup ${backupId} cannot be validated: it is ${backup.status}${backup.manifest ? '' : ' and has no manifest'}`,
      );
    }
    const row = await this.repository.start(
      backupId,
      this.leadership.instanceId,
      RequestContextStore.get()?.keyId ?? null,
    );
    if (!row) {
      const running = await this.repository.running();
      throw new DomainError(
        ErrorCode.Conflict,
        `validation ${running?.id ?? '(unknown)'} of backup ${running?.backupId ?? '?'} is running`,
      );
    }
    this.tasks.start('validation', row.id, () => this.execute(row, backup).then(() => undefined));
    return { id: row.id };
  }

  /** The monthly job: validates the newest succeeded backup; null when there is none. */
  async validateNewest(): Promise<{ validationId: string; status: string } | null> {
    const backup = await this.repository.newestSucceededBackup();
    if (!backup) {
      return null;
    }
    const { id } = await this.request(backup.id);
    await this.tasks.drain();
    const row = await this.repository.validation(id);
    return { validationId: id, status: row?.status ?? 'unknown' };
  }

  async get(id: string): Promise<ValidationResponseDto> {
    const row = await this.repository.validation(id);
    if (!row) {
      throw new NotFoundError('backup validation', id);
    }
    return toDto(row);
  }

  /** Waits for the background validations (tests). */
  drain(): Promise<void> {
    return this.tasks.drain();
  }

  private mustProvider(): BackupProvider {
    if (!this.provider) {
      throw new BackupsOffError();
    }
    return this.provider;
  }

  private async execute(row: ValidationRow, backup: BackupRow): Promise<ValidationReport> {
    const provider = this.mustProvider();
    const manifest = backup.manifest!;
    const started = Date.now();
    const checks: CheckResult[] = [];
    let erasure: ValidationReport['erasure'] = null;
    let scratch: RestoredInstance | null = null;
    let error: string | null = null;
    let restoreSeconds: number | null = null;
    try {
      // A backup taken moments ago on a quiet cluster: its manifest LSN is not archived yet.
      await archiveNow(provider, this.logger, { validation: row.id, lsn: manifest.lsn });
      const verified = await provider.verify(backup.label!);
      if (verified && !verified.ok) {
        error = `the repository copy of backup ${backup.label!} is damaged: ${verified.problems.join('; ')}`;
        checks.push({
          type: ValidationCheck.RestoreTest,
          passed: false,
          details: { error, verify: verified.problems },
        });
      }
      try {
        if (error) {
          throw new Error(error);
        }
        scratch = await provider.restore(
          { kind: 'backup', label: backup.label!, lsn: manifest.lsn },
          {
            name: `${this.database}-validation-${row.id.slice(0, 8)}`,
            purpose: 'validation',
            onPrepared: (ref) => this.repository.setScratch(row.id, ref, null),
          },
        );
        await this.repository.setScratch(row.id, scratch.ref, scratch.port);
        restoreSeconds = (scratch.readyAt.getTime() - started) / 1000;
      } catch (err) {
        if (!error) {
          error = `restore failed: ${(err as Error).message}`;
          checks.push({ type: ValidationCheck.RestoreTest, passed: false, details: { error } });
        }
      }
      if (scratch) {
        await this.beforeChecks?.(scratch);
        checks.push(await this.restoreTest(scratch, backup, verified === null));
        checks.push(await this.dataIntegrity(scratch, manifest));
        checks.push(await this.performance(scratch, manifest));
        erasure = await this.reapplyErasures(scratch);
      }
      checks.push(await this.recoveryTime(started, scratch !== null));
    } catch (err) {
      error = (err as Error).message;
      this.logger.error({ validation: row.id, error }, 'validation aborted');
    } finally {
      if (scratch) {
        await scratch
          .stop()
          .catch((err: Error) =>
            this.logger.error(
              { validation: row.id, instance: scratch?.ref, error: err.message },
              'could not remove the temporary instance',
            ),
          );
      }
    }
    for (const type of Object.values(ValidationCheck)) {
      if (!checks.some((c) => c.type === type)) {
        checks.push({
          type,
          passed: false,
          details: { error: 'not run: ' + (error ?? 'the restore failed') },
        });
      }
    }
    const passed = error === null && checks.every((c) => c.passed) && (erasure?.passed ?? false);
    const report: ValidationReport = {
      backupId: backup.id,
      label: backup.label!,
      targetLsn: manifest.lsn,
      checks,
      erasure,
      restoreSeconds,
      totalSeconds: (Date.now() - started) / 1000,
    };
    const failed = checks.filter((c) => !c.passed).map((c) => c.type);
    const message =
      error ??
      (failed.length > 0
        ? `checks failed: ${failed.join(', ')}`
        : passed
          ? null
          : 'erased users are readable in the restored copy');
    await this.repository.finish(row.id, passed ? 'passed' : 'failed', report, message);
    await this.repository.setVerdict(backup.id, passed ? 'good' : 'bad');
    this.metrics.validated(passed, report.totalSeconds, new Date());
    this.logger[passed ? 'log' : 'error'](
      {
        validation: row.id,
        backup: backup.id,
        label: backup.label,
        failed,
        seconds: report.totalSeconds,
      },
      passed ? 'backup validated: good' : 'backup validation FAILED: backup marked bad',
    );
    return report;
  }

  private get database(): string {
    return this.config.database.name;
  }

  private async restoreTest(
    scratch: RestoredInstance,
    backup: BackupRow,
    snapshot: boolean,
  ): Promise<CheckResult> {
    try {
      const [row] = await query<{ checkpoint: string; recovery: boolean; ok: number }>(
        scratch,
        this.database,
        `SELECT (pg_control_checkpoint()).checkpoint_lsn::text AS checkpoint,
                pg_is_in_recovery() AS recovery, 1 AS ok`,
      );
      const reached = backup.stopLsn
        ? lsnToBigInt(row.checkpoint) >= lsnToBigInt(backup.stopLsn)
        : true;
      return {
        type: ValidationCheck.RestoreTest,
        passed: reached && !row.recovery && (await scratch.alive()),
        details: {
          acceptsConnections: true,
          inRecovery: row.recovery,
          checkpointLsn: row.checkpoint,
          backupStopLsn: backup.stopLsn,
          reachedConsistencyPoint: reached,
          port: scratch.port,
          provider: this.provider?.name,
          ...(snapshot
            ? {
                // NOTE: said, not silently passed: a provider without a repository copy
                // (RDS) neither verifies one nor stops recovery at the manifest LSN.
                repositoryVerify: 'not applicable: the provider keeps no repository copy',
                recoveryTarget: 'the snapshot itself (the manifest LSN cannot be applied)',
              }
            : {}),
        },
      };
    } catch (err) {
      return {
        type: ValidationCheck.RestoreTest,
        passed: false,
        details: { error: (err as Error).message, log: await scratch.logTail() },
      };
    }
  }

  private async dataIntegrity(
    scratch: RestoredInstance,
    manifest: BackupManifest,
  ): Promise<CheckResult> {
    const problems: string[] = [];
    const details: Record<string, unknown> = {};
    const client = await connect(scratch, this.database);
    try {
      const actual = await tableChecksums(client);
      const diff = diffChecksums(manifest.tables, actual);
      details.tables = Object.keys(actual).length;
      details.checksumMismatches = diff;
      problems.push(...diff);
      const before = await client.query(`SELECT 1 FROM backup_markers WHERE id = $1`, [
        manifest.markerBefore,
      ]);
      const after = await client.query(`SELECT 1 FROM backup_markers WHERE id = $1`, [
        manifest.markerAfter,
      ]);
      details.markerBeforePresent = before.rowCount === 1;
      details.markerAfterAbsent = after.rowCount === 0;
      if (before.rowCount !== 1) {
        problems.push(`marker ${manifest.markerBefore} written before the backup is missing`);
      }
      if (after.rowCount !== 0) {
        problems.push(`marker ${manifest.markerAfter} written after the backup is present`);
      }
      const hnsw = await client.query<{ name: string; valid: boolean }>(
        `SELECT c.relname AS name, i.indisvalid AND i.indisready AS valid
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
          WHERE i.indrelid = 'public.recipes'::regclass AND a.amname = 'hnsw'`,
      );
      details.hnswIndex = hnsw.rows;
      if (!hnsw.rows.some((r) => r.valid)) {
        problems.push('no valid HNSW index on recipes');
      }
      const vectorMismatches: string[] = [];
      for (const q of manifest.vectorQueries) {
        const ids = await exactNeighbours(client, q.recipeId, q.limit);
        if (ids.join(',') !== q.ids.join(',')) {
          vectorMismatches.push(
            `recipe ${q.recipeId}: expected [${q.ids.join(', ')}], got [${ids.join(', ')}]`,
          );
        }
      }
      details.vectorQueries = manifest.vectorQueries.length;
      details.vectorMismatches = vectorMismatches;
      problems.push(...vectorMismatches);
    } catch (err) {
      problems.push(`integrity queries failed: ${(err as Error).message}`);
    } finally {
      await client.end();
    }
    const amcheck = await this.amcheck(scratch);
    details.amcheck = amcheck;
    if (!amcheck.passed) {
      problems.push(`pg_amcheck: ${amcheck.output}`);
    }
    details.problems = problems;
    return { type: ValidationCheck.DataIntegrity, passed: problems.length === 0, details };
  }

  /** pg_amcheck over every database and relation, heap against every index. */
  private async amcheck(scratch: RestoredInstance): Promise<{ passed: boolean; output: string }> {
    const cfg = scratch.clientConfig('postgres');
    const [file, args] = asOsUser(
      this.config.backup,
      join(this.config.backup.pgBin, 'pg_amcheck'),
      [
        '--host',
        String(cfg.host),
        '--port',
        String(cfg.port),
        '--username',
        String(cfg.user),
        '--all',
        '--heapallindexed',
        '--install-missing',
        '--no-password',
      ],
    );
    // NOTE: the password and TLS mode go by environment, never on the command line.
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (cfg.password) {
      env.PGPASSWORD = String(cfg.password);
    }
    if (cfg.ssl) {
      Object.assign(env, libpqSslEnv(cfg.ssl));
    }
    try {
      const { stdout, stderr } = await run(file, args, {
        timeout: 3600_000,
        maxBuffer: 16 * 1024 * 1024,
        env,
      });
      return { passed: true, output: `${stderr}${stdout}`.trim().slice(-2000) };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      const output = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim() || e.message;
      return { passed: false, output: output.split('\n').slice(0, 20).join('\n') };
    }
  }

  /** Canonical reads timed on the scratch copy and on the live read path. */
  private async performance(
    scratch: RestoredInstance,
    manifest: BackupManifest,
  ): Promise<CheckResult> {
    const client = await connect(scratch, this.database);
    try {
      const [sample] = (
        await client.query<{ id: string; cuisine: string; embedding: string | null }>(
          `SELECT id::text AS id, cuisine, embedding::text AS embedding FROM recipes
            WHERE ($1::uuid IS NULL OR id = $1::uuid) ORDER BY id LIMIT 1`,
          [manifest.vectorQueries[0]?.recipeId ?? null],
        )
      ).rows;
      if (!sample) {
        return {
          type: ValidationCheck.Performance,
          passed: true,
          details: { skipped: 'no recipes in the backup' },
        };
      }
      const queries: Array<{ name: string; sql: string; params: unknown[] }> = [
        { name: 'recipe_by_id', sql: `SELECT * FROM recipes WHERE id = $1`, params: [sample.id] },
        {
          name: 'filtered_list',
          sql: `SELECT id, title FROM recipes WHERE cuisine = $1 ORDER BY created_at DESC LIMIT 20`,
          params: [sample.cuisine],
        },
      ];
      if (sample.embedding) {
        queries.push({
          name: 'vector_search',
          sql: `SELECT id FROM recipes WHERE embedding IS NOT NULL ORDER BY embedding <=> $1::vector LIMIT 10`,
          params: [sample.embedding],
        });
      }
      const tolerance = this.config.backup.perfTolerance;
      const results = [];
      for (const q of queries) {
        const { scratchMs, liveMs } = await timeBoth(
          () => client.query(q.sql, q.params),
          (measure) =>
            this.router.read((m: EntityManager) => measure(() => m.query(q.sql, q.params))),
        );
        // A few milliseconds are scheduler noise on a busy host, not a slower copy.
        const passed = scratchMs <= tolerance * Math.max(liveMs, PERF_FLOOR_MS);
        results.push({ query: q.name, scratchMs, liveMs, passed });
      }
      return {
        type: ValidationCheck.Performance,
        passed: results.every((r) => r.passed),
        details: { tolerance, floorMs: PERF_FLOOR_MS, runs: PERF_RUNS, queries: results },
      };
    } catch (err) {
      return {
        type: ValidationCheck.Performance,
        passed: false,
        details: { error: (err as Error).message },
      };
    } finally {
      await client.end();
    }
  }

  private async recoveryTime(started: number, restored: boolean): Promise<CheckResult> {
    const seconds = (Date.now() - started) / 1000;
    const { rtoSeconds, rpoSeconds } = this.config.backup.objectives;
    let rpo: number | null = null;
    let rpoError: string | null = null;
    try {
      const window = await this.mustProvider().detailedWindow();
      rpo = window.newest ? (Date.now() - window.newest.getTime()) / 1000 : null;
    } catch (err) {
      rpoError = (err as Error).message;
    }
    const passed = restored && seconds <= rtoSeconds && rpo !== null && rpo <= rpoSeconds;
    return {
      type: ValidationCheck.RecoveryTime,
      passed,
      details: {
        rtoMeasuredSeconds: seconds,
        rtoSeconds,
        rpoSeconds: rpo,
        rpoObjectiveSeconds: rpoSeconds,
        rpoError,
      },
    };
  }

  /** The erasure ledger re-applied on the copy; then nothing of an erased user may be left. */
  private async reapplyErasures(
    scratch: RestoredInstance,
  ): Promise<NonNullable<ValidationReport['erasure']>> {
    const ds = scratchDataSource(scratch.clientConfig(this.database));
    await ds.initialize();
    try {
      const result = await this.erasure.reapplyLedgerOn(ds);
      const leftovers = await this.erasure.leftoversOn(ds, result.userIds);
      return {
        usersErased: result.usersErased,
        keysDestroyed: result.keysDestroyed,
        leftovers,
        passed: leftovers.length === 0,
      };
    } finally {
      await ds.destroy();
    }
  }
}

/** A TypeORM DataSource on a restored instance (the erasure ledger is re-applied with it). */
export function scratchDataSource(cfg: pg.ClientConfig): DataSource {
  return new DataSource({
    type: 'postgres',
    host: String(cfg.host),
    port: cfg.port,
    username: String(cfg.user),
    password: cfg.password === undefined ? undefined : String(cfg.password),
    database: String(cfg.database),
    ssl: cfg.ssl as boolean | undefined,
    poolSize: 2,
  });
}

async function connect(instance: RestoredInstance, database: string): Promise<pg.Client> {
  const client = new pg.Client(instance.clientConfig(database));
  await client.connect();
  return client;
}

async function query<T>(
  instance: RestoredInstance,
  database: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = await connect(instance, database);
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

type Measure = (run: () => Promise<unknown>) => Promise<number>;

/** Milliseconds of one run. */
const measure: Measure = async (run) => {
  const t = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

/**
 * Medians of PERF_RUNS runs on the scratch copy and on the live cluster, alternated (a load
 * spike on the host hits both sides, not only the one measured at that moment), after a
 * warm-up of each.
 */
async function timeBoth(
  scratch: () => Promise<unknown>,
  live: (m: Measure) => Promise<number>,
): Promise<{ scratchMs: number; liveMs: number }> {
  await scratch();
  await live(measure);
  const s: number[] = [];
  const l: number[] = [];
  for (let i = 0; i < PERF_RUNS; i += 1) {
    s.push(await measure(scratch));
    l.push(await live(measure));
  }
  const round = (v: number): number => Math.round(v * 1000) / 1000;
  return { scratchMs: round(median(s)), liveMs: round(median(l)) };
}

function toDto(r: ValidationRow): ValidationResponseDto {
  return {
    id: r.id,
    backupId: r.backupId,
    status: r.status,
    startedAt: new Date(r.startedAt).toISOString(),
    finishedAt: r.finishedAt ? new Date(r.finishedAt).toISOString() : null,
    error: r.error,
    report: (r.report as ValidationReport | null) ?? null,
  };
}

export type { ScratchInstance };
