import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter } from 'prom-client';
import { DataSource } from 'typeorm';
import { MetricsService } from '../monitoring/metrics.service.js';
import { DatabaseMetric } from './database.metrics.js';
import { TopologyService } from './topology.service.js';
import { SafeTypeOrmLogger } from './typeorm-logger.js';

/**
 * Counts the statements SafeTypeOrmLogger logs as slow (DB_SLOW_QUERY_MS), by node:
 * the spec's slow_queries metric filter as a metric, without parsing logs.
 */
@Injectable()
export class SlowQueryMetrics implements OnModuleInit {
  readonly slowQueries: Counter<'node'>;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly topology: TopologyService,
    metrics: MetricsService,
  ) {
    this.slowQueries = new Counter({
      name: DatabaseMetric.SlowQueries,
      help: 'Statements slower than DB_SLOW_QUERY_MS, by node (each also logged once as "slow query")',
      labelNames: ['node'],
      registers: [metrics.registry],
    });
  }

  onModuleInit(): void {
    for (const node of this.topology.names()) {
      this.slowQueries.inc({ node }, 0);
    }
    const logger = this.dataSource.logger;
    if (logger instanceof SafeTypeOrmLogger) {
      logger.onSlowQuery = (q) => this.slowQueries.inc({ node: q.node });
    }
  }
}
