import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import type pg from 'pg';
import type { AppConfig, NodeAddress } from '../../config/app-config.js';
import { discoverTopology } from '../../database/boot.js';
import { directClientConfig, nodeName, withDirectClient } from '../../database/pg-direct.js';
import { ErasureService } from '../../gdpr/erasure.service.js';
import { PgBackRestProvider } from '../pgbackrest.provider.js';
import { recoveryWindow } from '../recovery-window.js';
import type { DrOptions, DrPlan, DrTarget } from './dr-plan.js';
import { describeTarget, DrRefusedError, planRestore } from './dr-plan.js';

/** The spec's automated steps, then the ledger and the summary: numbered as printed. */
export const DrStep = {
  Identify: 'backup identification',
  Provision: 'instance provisioning',
  Restore: 'data restoration',
  Replica: 'replica rebuild',
  Validate: 'connection validation',
  Ledger: 'erasure ledger re-applied',
} as const;
export type DrStep = (typeof DrStep)[keyof typeof DrStep];

const STEP_COUNT = 7;
const REPLICA_CATCH_UP_MS = 120_000;
const PGBOUNCER_WAIT_MS = 45_000;

/** A step failed: the message says which and why; the CLI exits 1. */
export class DrStepError extends Error {
  constructor(
    readonly step: DrStep,
    message: string,
  ) {
    super(`step "${step}" failed: ${message}`);
  }
}

export interface DrValidation {
  writer: string;
  timeline: number;
  tablesReadable: number;
  lastMigration: string | null;
  replicas: Array<{ node: string; streaming: boolean; replayLsn: string | null }>;
  pgbouncer: 'ok' | 'not configured';
}

export interface DrSummary {
  target: string;
  backup: string;
  dryRun: boolean;
  steps: Array<{ n: number; step: DrStep; seconds: number }>;
  /** Seconds from the start of the command to a validated database with the ledger re-applied. */
  rtoSeconds: number | null;
  /** The last transaction replayed (the recovery point reached) and the WAL position. */
  recoveryPoint: { lastTransactionAt: string | null; lsn: string | null } | null;
  validation: DrValidation | null;
  ledger: { usersErased: number; keysDestroyed: number } | null;
  movedAside: string[];
  objectives: { rtoSeconds: number; rpoSeconds: number };
}

/** Where lines go (stdout in the CLI). */
export type DrOut = (line: string) => void;

/**
 * `npm run dr:restore` on a self-managed cluster run by `docker/stack.sh` (the local stack,
 * the pgBackRest provider): identifies the backup set for the target, restores it into
 * the primary's folder through the stack script, rebuilds the replica, validates the
 * connections as the service's role and re-applies the erasure ledger (ErasureService)
 * before the database is handed back. docs/dr_runbook.md.
 */
export class DisasterRecovery {
  private readonly started = Date.now();
  private readonly steps: DrSummary['steps'] = [];
  private readonly movedAside: string[] = [];

  constructor(
    private readonly config: AppConfig,
    private readonly stackScript: string,
    private readonly out: DrOut,
  ) {}

  async run(options: DrOptions): Promise<DrSummary> {
    if (options.validateOnly || !options.target) {
      // the database was restored by other means (RDS point-in-time restore): check it and
      // re-apply the ledger before it serves traffic
      this.out(
        `[dr] validation and erasure ledger only, on ${this.config.database.nodes.map(nodeName).join(', ')}`,
      );
      const { validation, recoveryPoint } = await this.step(5, DrStep.Validate, () =>
        this.validate(),
      );
      const ledger = await this.step(6, DrStep.Ledger, () => this.reapplyLedger());
      const rto = (Date.now() - this.started) / 1000;
      return this.summary(null, options, rto, recoveryPoint, validation, ledger);
    }
    const target = options.target;
    if (this.config.backup.provider !== 'pgbackrest') {
      throw new DrRefusedError(
        `BACKUP_PROVIDER=${this.config.backup.provider}: this command restores pgBackRest clusters run by docker/stack.sh; on RDS restore with restore-db-instance-to-point-in-time (docs/dr_runbook.md, "On RDS"), then run npm run dr:restore -- --validate-only`,
      );
    }
    this.out(
      `[dr] disaster recovery to ${describeTarget(target)}${options.dryRun ? ' (dry run: nothing is changed)' : ''}`,
    );
    const plan = await this.step(1, DrStep.Identify, () => this.identify(target));
    if (options.dryRun) {
      this.out('[dr] plan:');
      this.out(
        `[dr]   2. ${DrStep.Provision}: docker/stack.sh dr-prepare (stop the nodes, move their data folders aside)`,
      );
      this.out(
        `[dr]   3. ${DrStep.Restore}: docker/stack.sh dr-restore ${plan.backup.label} ${plan.restoreType}${plan.restoreTarget ? ` '${plan.restoreTarget}'` : ''}`,
      );
      this.out(`[dr]   4. ${DrStep.Replica}: docker/stack.sh rebuild replica`);
      this.out(
        `[dr]   5. ${DrStep.Validate}: as ${this.config.database.user} on ${this.config.database.nodes.map(nodeName).join(', ')}`,
      );
      this.out(
        `[dr]   6. ${DrStep.Ledger}: ErasureService.reapplyLedger on ${this.config.database.name}`,
      );
      return this.summary(plan, options, null, null, null, null);
    }
    await this.step(2, DrStep.Provision, () => this.stack(DrStep.Provision, 'dr-prepare'));
    await this.step(3, DrStep.Restore, () =>
      this.stack(
        DrStep.Restore,
        'dr-restore',
        plan.backup.label,
        plan.restoreType,
        ...(plan.restoreTarget ? [plan.restoreTarget] : []),
      ),
    );
    await this.step(4, DrStep.Replica, () => this.stack(DrStep.Replica, 'rebuild', 'replica'));
    const { validation, recoveryPoint } = await this.step(5, DrStep.Validate, () =>
      this.validate(),
    );
    const ledger = await this.step(6, DrStep.Ledger, () => this.reapplyLedger());
    const rto = (Date.now() - this.started) / 1000;
    return this.summary(plan, options, rto, recoveryPoint, validation, ledger);
  }

  private async step<T>(n: number, step: DrStep, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    this.out(`[dr] step ${n}/${STEP_COUNT} ${step}: started`);
    const result = await fn();
    const seconds = (Date.now() - t0) / 1000;
    this.steps.push({ n, step, seconds });
    this.out(`[dr] step ${n}/${STEP_COUNT} ${step}: done in ${seconds.toFixed(1)} s`);
    return result;
  }

  private async identify(target: DrTarget): Promise<DrPlan> {
    await this.checkStackMatchesConfig();
    const provider = new PgBackRestProvider(this.config.backup);
    const [backups, window] = await Promise.all([
      provider.list(),
      recoveryWindow(this.config.backup),
    ]).catch((err: Error) => {
      throw new DrStepError(DrStep.Identify, `cannot read the backup repository: ${err.message}`);
    });
    this.out(`[dr]   ${backups.length} backup sets; recoverable window:`);
    for (const r of window.ranges) {
      this.out(
        `[dr]     ${r.from.toISOString()} .. ${r.to.toISOString()}  (LSN ${r.fromLsn} .. ${r.toLsn})`,
      );
    }
    for (const g of window.gapDetails) {
      this.out(`[dr]     archive gap: WAL missing between ${g.afterWal} and ${g.beforeWal}`);
    }
    const plan = planRestore(backups, window, target);
    this.out(
      `[dr]   backup set ${plan.backup.label} (${plan.backup.type}, finished ${plan.backup.stoppedAt.toISOString()}, LSN ${plan.backup.stopLsn ?? '?'}), replay ${plan.restoreType === 'default' ? `to the end of the archive (about ${plan.reachableUntil.toISOString()})` : `to ${plan.restoreType} ${plan.restoreTarget ?? ''}`}`,
    );
    return plan;
  }

  /** The stack the script would restore must be the one the service's DB_NODES name. */
  private async checkStackMatchesConfig(): Promise<void> {
    const env = await this.capture(['env']);
    const nodes = /^export DB_NODES=(.*)$/m.exec(env)?.[1]?.trim();
    const configured = this.config.database.nodes.map(nodeName).join(',');
    if (!nodes) {
      throw new DrStepError(DrStep.Identify, 'docker/stack.sh env printed no DB_NODES');
    }
    if (nodes !== configured) {
      throw new DrRefusedError(
        `DB_NODES (${configured}) is not the stack docker/stack.sh would restore (${nodes}): run with the stack's environment (eval "$(bash docker/stack.sh env)") and its STACK_* variables`,
      );
    }
  }

  private async validate(): Promise<{
    validation: DrValidation;
    recoveryPoint: DrSummary['recoveryPoint'];
  }> {
    const db = this.config.database;
    const topology = await discoverTopology(this.config).catch((err: Error) => {
      throw new DrStepError(DrStep.Validate, `no writable primary: ${err.message}`);
    });
    const writer = topology.writer.address;
    const asService = directClientConfig(db, writer, { applicationName: 'dr-restore' });
    const facts = await withDirectClient(asService, async (c) => {
      // a transaction id can only be assigned by a node that accepts writes
      await c.query('SELECT pg_current_xact_id()');
      const tables = await c.query<{ name: string }>(
        `SELECT format('%I', c.relname) AS name FROM pg_class c
          WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          ORDER BY 1`,
      );
      if (tables.rows.length === 0) {
        throw new DrStepError(
          DrStep.Validate,
          `database ${db.name} on ${nodeName(writer)} has no application tables`,
        );
      }
      for (const t of tables.rows) {
        await c.query(`SELECT 1 FROM public.${t.name} LIMIT 1`).catch((err: Error) => {
          throw new DrStepError(
            DrStep.Validate,
            `table ${t.name} is not readable as ${db.user}: ${err.message}`,
          );
        });
      }
      const migration = await c
        .query<{ name: string }>(`SELECT name FROM typeorm_migrations ORDER BY id DESC LIMIT 1`)
        .then((r) => r.rows[0]?.name ?? null)
        .catch(() => null);
      const point = await c.query<{ at: Date | null; lsn: string | null; tli: number }>(
        `SELECT pg_last_xact_replay_timestamp() AS at, pg_last_wal_replay_lsn()::text AS lsn,
                (SELECT timeline_id FROM pg_control_checkpoint()) AS tli`,
      );
      return { tables: tables.rows.length, migration, point: point.rows[0] };
    });
    const replicas = await this.waitReplicasStreaming(
      writer,
      db.nodes.filter((n) => nodeName(n) !== nodeName(writer)),
    );
    const pgbouncer = await this.checkPgBouncer();
    const validation: DrValidation = {
      writer: nodeName(writer),
      timeline: Number(facts.point.tli),
      tablesReadable: facts.tables,
      lastMigration: facts.migration,
      replicas,
      pgbouncer,
    };
    this.out(
      `[dr]   writer ${validation.writer} (timeline ${validation.timeline}) accepts writes; ${validation.tablesReadable} tables readable as ${db.user}; schema at ${validation.lastMigration ?? '?'}`,
    );
    for (const r of replicas) {
      this.out(`[dr]   replica ${r.node} streaming, replayed ${r.replayLsn ?? '?'}`);
    }
    this.out(`[dr]   pgbouncer: ${pgbouncer}`);
    return {
      validation,
      recoveryPoint: {
        lastTransactionAt: facts.point.at ? new Date(facts.point.at).toISOString() : null,
        lsn: facts.point.lsn,
      },
    };
  }

  /** Every other configured node is a standby streaming from the writer and has caught up. */
  private async waitReplicasStreaming(
    writer: NodeAddress,
    others: NodeAddress[],
  ): Promise<DrValidation['replicas']> {
    if (others.length === 0) {
      throw new DrStepError(DrStep.Validate, 'DB_NODES names no replica');
    }
    const db = this.config.database;
    const target = await withDirectClient(directClientConfig(db, writer), (c) =>
      c
        .query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
        .then((r) => r.rows[0].lsn),
    );
    const out: DrValidation['replicas'] = [];
    for (const node of others) {
      const deadline = Date.now() + REPLICA_CATCH_UP_MS;
      let last: string;
      for (;;) {
        const state = await withDirectClient(directClientConfig(db, node), (c: pg.Client) =>
          c
            .query<{
              recovery: boolean;
              status: string | null;
              caught_up: boolean;
              replay: string | null;
            }>(
              `SELECT pg_is_in_recovery() AS recovery,
                      (SELECT status FROM pg_stat_wal_receiver) AS status,
                      coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS caught_up,
                      pg_last_wal_replay_lsn()::text AS replay`,
              [target],
            )
            .then((r) => r.rows[0]),
        ).catch((err: Error) => ({ error: err.message }));
        if ('error' in state) {
          last = `unreachable: ${state.error}`;
        } else if (!state.recovery) {
          last = 'it is not a standby (not in recovery)';
        } else if (state.status !== 'streaming') {
          last = `its WAL receiver is ${state.status ?? 'not running'}`;
        } else if (!state.caught_up) {
          last = `replayed ${state.replay ?? '?'}, behind the writer's ${target}`;
        } else {
          out.push({ node: nodeName(node), streaming: true, replayLsn: state.replay });
          break;
        }
        if (Date.now() > deadline) {
          throw new DrStepError(
            DrStep.Validate,
            `replica ${nodeName(node)} does not stream from ${nodeName(writer)} after ${REPLICA_CATCH_UP_MS / 1000} s: ${last}`,
          );
        }
        await sleep(500);
      }
    }
    return out;
  }

  /** PgBouncer retries a failed server login only after server_login_retry: wait for it. */
  private async checkPgBouncer(): Promise<DrValidation['pgbouncer']> {
    const pgb = this.config.pgbouncer;
    if (!pgb?.host) {
      return 'not configured';
    }
    const cfg = {
      ...directClientConfig(this.config.database, { host: pgb.host, port: pgb.port }),
      database: pgb.dbRw,
    };
    const deadline = Date.now() + PGBOUNCER_WAIT_MS;
    for (;;) {
      try {
        await withDirectClient(cfg, (c) => c.query('SELECT pg_current_xact_id()'));
        return 'ok';
      } catch (err) {
        if (Date.now() > deadline) {
          throw new DrStepError(
            DrStep.Validate,
            `PgBouncer ${pgb.host}:${pgb.port}/${pgb.dbRw} does not reach the writer: ${(err as Error).message}`,
          );
        }
        await sleep(1000);
      }
    }
  }

  /**
   * The restore may have brought erased users back: the service's own erasure path
   * erases them again from the ledger and the keystore's tombstones (the copy that
   * survives when the keystore lives outside the restored cluster), purges caches.
   */
  private async reapplyLedger(): Promise<{ usersErased: number; keysDestroyed: number }> {
    const { AppModule } = await import('../../app.module.js');
    const config: AppConfig = {
      ...this.config,
      jobs: { ...this.config.jobs, enabled: false },
      database: {
        ...this.config.database,
        migrationsRun: false,
        failover: { ...this.config.database.failover, mode: 'off' },
        poolControl: { ...this.config.database.poolControl, evalIntervalMs: 0 },
      },
    };
    const app = await NestFactory.createApplicationContext(AppModule.forRoot(config), {
      abortOnError: false,
    });
    try {
      const result = await app.get(ErasureService).reapplyLedger();
      this.out(
        `[dr]   ${result.usersErased} erased users found again and erased, ${result.keysDestroyed} keys destroyed`,
      );
      return result;
    } finally {
      await app.close();
    }
  }

  /** Runs `docker/stack.sh ARGS` with this process's environment, output passed through. */
  private stack(step: DrStep, ...args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [this.stackScript, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let tail: string[] = [];
      const forward = (chunk: Buffer): void => {
        const text = chunk.toString();
        for (const line of text.split('\n').filter((l) => l !== '')) {
          this.out(`  ${line}`);
          tail = [...tail.slice(-9), line];
        }
      };
      child.stdout.on('data', forward);
      child.stderr.on('data', forward);
      child.on('error', (err) => reject(new DrStepError(step, err.message)));
      child.on('close', (code) => {
        if (code === 0) {
          const moved = tail.filter((l) => l.includes('moved aside:'));
          this.movedAside.push(...moved.map((l) => l.replace(/^.*moved aside: /, '')));
          resolve();
        } else {
          const error = tail.filter((l) => l.includes('ERROR')).pop() ?? tail.pop() ?? '';
          reject(
            new DrStepError(
              step,
              `docker/stack.sh ${args.join(' ')} exited ${String(code)}: ${error}`,
            ),
          );
        }
      });
    });
  }

  private capture(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [this.stackScript, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0
          ? resolve(stdout)
          : reject(
              new Error(
                `docker/stack.sh ${args.join(' ')} exited ${String(code)}: ${stderr.trim()}`,
              ),
            ),
      );
    });
  }

  private summary(
    plan: DrPlan | null,
    options: DrOptions,
    rto: number | null,
    recoveryPoint: DrSummary['recoveryPoint'],
    validation: DrValidation | null,
    ledger: DrSummary['ledger'],
  ): DrSummary {
    return {
      target: options.target ? describeTarget(options.target) : 'none (--validate-only)',
      backup: plan?.backup.label ?? 'none (--validate-only)',
      dryRun: options.dryRun,
      steps: this.steps,
      rtoSeconds: rto,
      recoveryPoint,
      validation,
      ledger,
      movedAside: this.movedAside,
      objectives: this.config.backup.objectives,
    };
  }
}
