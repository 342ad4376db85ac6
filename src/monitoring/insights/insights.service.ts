import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { blockingTrees } from './blocking-tree.js';
import type {
  ConnectionsResponseDto,
  LocksResponseDto,
  TopSqlResponseDto,
  WaitsResponseDto,
} from './dto/insights-response.dto.js';
import type { TopSqlQueryDto, WaitsQueryDto } from './dto/insights-query.dto.js';
import { InsightsHistoryRepository } from './insights-history.repository.js';
import { resolveWindow } from './insights-window.js';
import { LiveActivityRepository } from './live-activity.repository.js';
import { loadBreakdown } from './wait-load.js';

const DEFAULT_TOP_SQL = 20;
const DEFAULT_STATEMENTS = 10;
const IDLE_IN_TRANSACTION_LISTED = 50;

/** Performance insights: history for top SQL and load, the writer's live views for the rest. */
@Injectable()
export class InsightsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly history: InsightsHistoryRepository,
    private readonly live: LiveActivityRepository,
  ) {}

  async topSql(q: TopSqlQueryDto): Promise<TopSqlResponseDto> {
    const { from, to } = resolveWindow(q, new Date());
    const [availability, items] = await Promise.all([
      this.live.statementsAvailability(),
      this.history.topSql(from, to, q.limit ?? DEFAULT_TOP_SQL),
    ]);
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      available: availability.available,
      reason: availability.reason,
      snapshotSeconds: this.config.insights.snapshotSeconds,
      items,
    };
  }

  async waits(q: WaitsQueryDto): Promise<WaitsResponseDto> {
    const { from, to } = resolveWindow(q, new Date());
    const { samples, rows } = await this.history.waits(from, to);
    return {
      from: from.toISOString(),
      to: to.toISOString(),
      samples,
      ...loadBreakdown(samples, rows, q.limit ?? DEFAULT_STATEMENTS),
    };
  }

  async locks(): Promise<LocksResponseDto> {
    const sessions = await this.live.lockSessions();
    return {
      node: this.live.writerName,
      takenAt: new Date().toISOString(),
      blockedSessions: sessions.filter((s) => s.blockedBy.length > 0).length,
      trees: blockingTrees(sessions),
    };
  }

  async connections(): Promise<ConnectionsResponseDto> {
    const { groups, idleInTransaction } = await this.live.connections(IDLE_IN_TRANSACTION_LISTED);
    const idleAges = groups
      .map((g) => g.maxIdleInTransactionSeconds)
      .filter((s): s is number => s !== null);
    return {
      node: this.live.writerName,
      takenAt: new Date().toISOString(),
      total: groups.reduce((n, g) => n + g.count, 0),
      maxIdleInTransactionSeconds: idleAges.length > 0 ? Math.max(...idleAges) : null,
      groups,
      idleInTransaction,
    };
  }
}
