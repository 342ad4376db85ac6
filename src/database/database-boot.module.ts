import { Module } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { BootTopology, discoverTopology, routeTargets, runMigrationsLocked } from './boot.js';
import { buildDataSourceOptions } from './data-source.js';
import { BOOT_TOPOLOGY, ROUTE_LABELS } from './database.tokens.js';
import type { RouteLabels } from './read-router.service.js';

/** Discovers the topology and migrates before anything else touches the database. */
@Module({
  providers: [
    {
      provide: BOOT_TOPOLOGY,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig): Promise<BootTopology> => {
        const topology = await discoverTopology(config);
        if (config.database.migrationsRun) {
          await runMigrationsLocked(config, topology);
        }
        return topology;
      },
    },
    {
      provide: ROUTE_LABELS,
      inject: [APP_CONFIG, BOOT_TOPOLOGY],
      useFactory: (config: AppConfig, topology: BootTopology): RouteLabels => {
        const built = buildDataSourceOptions(config, routeTargets(topology));
        const viaPgBouncer =
          built.readLabels.length > 0 && built.readLabels[0].startsWith('pgbouncer/');
        return {
          writeLabel: built.writeLabel,
          readLabels: built.readLabels,
          readNodes: viaPgBouncer
            ? [topology.replicas.map((r) => r.name)]
            : topology.replicas.map((r) => [r.name]),
        };
      },
    },
  ],
  exports: [BOOT_TOPOLOGY, ROUTE_LABELS],
})
export class DatabaseBootModule {}
