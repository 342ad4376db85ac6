import { Inject, Injectable, Logger } from '@nestjs/common';
import { DependencyUnavailableError } from '../../common/errors.js';
import type pg from 'pg';
import type { AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { directClientConfig, withDirectClient } from '../../database/pg-direct.js';
import { TopologyService } from '../../database/topology.service.js';
import type { SessionInfo } from './blocking-tree.js';
import {
  ConnectionGroup,
  IdleInTransaction,
  readConnections,
  readLockSessions,
  statementsAvailability,
} from './live-activity.js';

/**
 * The writer's live views, for the insights routes: a short direct connection per
 * request (application_name database-unit:insights), like the monitoring sampler's.
 * These are the database's own statistics, not application data.
 */
@Injectable()
export class LiveActivityRepository {
  private readonly logger = new Logger(LiveActivityRepository.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly topology: TopologyService,
  ) {}

  get writerName(): string {
    return this.topology.writerName;
  }

  lockSessions(): Promise<SessionInfo[]> {
    return this.onWriter(readLockSessions);
  }

  connections(
    idleLimit: number,
  ): Promise<{ groups: ConnectionGroup[]; idleInTransaction: IdleInTransaction[] }> {
    return this.onWriter((c) => readConnections(c, idleLimit));
  }

  statementsAvailability(): Promise<{ available: boolean; reason: string | null }> {
    return this.onWriter(statementsAvailability);
  }

  private async onWriter<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const writer = this.topology.snapshot().find((n) => n.name === this.topology.writerName);
    if (!writer || !this.topology.isHealthy(writer.name)) {
      throw new DependencyUnavailableError('the writer is unavailable');
    }
    const db = this.config.database;
    const timeoutMs = this.config.monitoring.statementTimeoutMs;
    try {
      return await withDirectClient(
        {
          ...directClientConfig(db, writer.lastProbe.address, {
            timeoutMs: Math.max(timeoutMs, db.connectTimeoutMs),
            applicationName: 'database-unit:insights',
          }),
          statement_timeout: timeoutMs,
        },
        fn,
      );
    } catch (err) {
      this.logger.warn(
        { node: writer.name, error: err instanceof Error ? err.message : String(err) },
        'insights: live view read failed',
      );
      throw new DependencyUnavailableError('the writer did not answer the insights query');
    }
  }
}
