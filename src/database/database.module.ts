import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { BootTopology, routeTargets } from './boot.js';
import { DatabaseBootModule } from './database-boot.module.js';
import { buildDataSourceOptions } from './data-source.js';
import { BOOT_TOPOLOGY } from './database.tokens.js';
import { FailoverService } from './failover.service.js';
import { PoolControllerService } from './pool-controller.service.js';
import { ReplicaAutoscalerService } from './autoscaling/replica-autoscaler.service.js';
import { JobLeadershipService } from './job-leadership.service.js';
import { JobRunsRepository } from './job-runs.repository.js';
import { ReadRouterService } from './read-router.service.js';
import { SlowQueryMetrics } from './slow-query.metrics.js';
import { TopologyService } from './topology.service.js';

/** The one DataSource (replicated) and what routes, watches and locks around it. */
@Global()
@Module({
  imports: [
    DatabaseBootModule,
    TypeOrmModule.forRootAsync({
      imports: [DatabaseBootModule],
      inject: [APP_CONFIG, BOOT_TOPOLOGY],
      useFactory: (config: AppConfig, topology: BootTopology) => ({
        ...buildDataSourceOptions(config, routeTargets(topology)).options,
        autoLoadEntities: true,
        retryAttempts: 3,
        retryDelay: 1_000,
      }),
    }),
  ],
  providers: [
    TopologyService,
    ReadRouterService,
    FailoverService,
    PoolControllerService,
    ReplicaAutoscalerService,
    JobLeadershipService,
    JobRunsRepository,
    SlowQueryMetrics,
  ],
  exports: [
    DatabaseBootModule,
    TopologyService,
    ReadRouterService,
    FailoverService,
    PoolControllerService,
    ReplicaAutoscalerService,
    JobLeadershipService,
    JobRunsRepository,
  ],
})
export class DatabaseModule {}
