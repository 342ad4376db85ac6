import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { JobRunsRepository } from './job-runs.repository.js';
import { AdvisoryLock, LOCK_NAMESPACE } from './locks.js';
import { directClientConfig } from './pg-direct.js';
import { TopologyService } from './topology.service.js';

export type JobOutcome =
  | { ran: true; runId: string; status: 'succeeded' | 'failed'; detail?: unknown }
  | { ran: false; reason: 'not-leader' | 'already-running' | 'no-writer' };

/**
 * Runs scheduled jobs on one instance of a fleet. The first instance to take a
 * job's advisory lock on the writer keeps it (a session lock on a dedicated
 * direct connection, never through PgBouncer) and stays that job's leader until
 * it stops or loses the connection; then another instance takes over on its next tick.
 */
@Injectable()
export class JobLeadershipService implements OnModuleDestroy {
  private readonly logger = new Logger(JobLeadershipService.name);
  readonly instanceId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private readonly held = new Set<AdvisoryLock>();
  private readonly running = new Set<string>();
  private closed = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly topology: TopologyService,
    private readonly runs: JobRunsRepository,
  ) {}

  isLeader(lock: AdvisoryLock): boolean {
    return this.held.has(lock);
  }

  async runExclusive(
    job: string,
    lock: AdvisoryLock,
    work: () => Promise<unknown>,
  ): Promise<JobOutcome> {
    if (this.running.has(job)) {
      return { ran: false, reason: 'already-running' };
    }
    this.running.add(job);
    try {
      if (!(await this.acquire(lock))) {
        return { ran: false, reason: 'not-leader' };
      }
      const runId = await this.runs.start(job, this.instanceId);
      const started = Date.now();
      try {
        const detail = await work();
        await this.runs.finish(runId, 'succeeded', detail);
        this.logger.log({ job, runId, ms: Date.now() - started }, 'job succeeded');
        return { ran: true, runId, status: 'succeeded', detail };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await this.runs.finish(runId, 'failed', { error: message });
        this.logger.error({ job, runId, ms: Date.now() - started, err }, 'job failed');
        return { ran: true, runId, status: 'failed', detail: { error: message } };
      }
    } catch (err) {
      this.logger.warn({ job, err }, 'job could not start');
      return { ran: false, reason: 'no-writer' };
    } finally {
      this.running.delete(job);
    }
  }

  /** Leadership only (no run record): for frequent leader-only work such as pool control. */
  async tryLead(lock: AdvisoryLock): Promise<boolean> {
    try {
      return await this.acquire(lock);
    } catch (err) {
      this.logger.warn({ lock, error: (err as Error).message }, 'leadership check failed');
      return false;
    }
  }

  private async acquire(lock: AdvisoryLock): Promise<boolean> {
    const client = await this.connection();
    if (this.held.has(lock)) {
      return true;
    }
    const res = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
      LOCK_NAMESPACE,
      lock,
    ]);
    if (res.rows[0]?.ok) {
      this.held.add(lock);
      this.logger.log(
        { lock: AdvisoryLock[lock], instance: this.instanceId },
        'took job leadership',
      );
      return true;
    }
    return false;
  }

  private connection(): Promise<pg.Client> {
    if (this.closed) {
      return Promise.reject(new Error('shutting down'));
    }
    if (this.client) {
      return Promise.resolve(this.client);
    }
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async open(): Promise<pg.Client> {
    const writer = this.topology.snapshot().find((n) => n.name === this.topology.writerName);
    if (!writer) {
      throw new Error('no writer known');
    }
    const client = new pg.Client(
      directClientConfig(this.config.database, writer.lastProbe.address, {
        applicationName: 'database-unit:jobs',
      }),
    );
    const lost = (reason: string): void => {
      if (this.client === client) {
        this.client = null;
        if (this.held.size > 0) {
          this.logger.warn(
            { reason, locks: [...this.held].map((l) => AdvisoryLock[l]) },
            'lost job leadership',
          );
        }
        this.held.clear();
      }
    };
    client.on('error', (err) => lost(err.message));
    client.on('end', () => lost('connection ended'));
    await client.connect();
    this.client = client;
    return client;
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = null;
    this.held.clear();
    if (client) {
      await client.end().catch((err: Error) => this.logger.warn({ err }, 'closing job connection'));
    }
  }
}
