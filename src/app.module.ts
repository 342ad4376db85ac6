import { DynamicModule, MiddlewareConsumer, Module, NestModule } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { AlertingModule } from './alerting/alerting.module.js';
import { AuditModule } from './audit/audit.module.js';
import { BackupModule } from './backup/backup.module.js';
import { CacheInfraModule } from './cache/cache.module.js';
import { ComplianceModule } from './compliance/compliance.module.js';
import { IdempotencyModule } from './common/idempotency.js';
import { LifecycleService } from './common/lifecycle.service.js';
import { PersonalDataModule } from './common/personal-data.js';
import { RequestContextMiddleware } from './common/request-context.middleware.js';
import type { AppConfig } from './config/app-config.js';
import { ConfigModule } from './config/config.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { DatabaseModule } from './database/database.module.js';
import { GdprModule } from './gdpr/gdpr.module.js';
import { HealthModule } from './health/health.module.js';
import { MonitoringModule } from './monitoring/monitoring.module.js';
import { MonitoringSamplerModule } from './monitoring/sampler.module.js';
import { InsightsModule } from './monitoring/insights/insights.module.js';
import { OpsModule } from './ops/ops.module.js';
import { RecipesModule } from './recipes/recipes.module.js';
import { UsersModule } from './users/users.module.js';
import { CryptoModule } from './security/crypto/crypto.module.js';
import { SecurityModule } from './security/security.module.js';

@Module({})
export class AppModule implements NestModule {
  /** `config`: an explicit tree (tests); otherwise read from the environment. */
  static forRoot(config?: AppConfig): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        ConfigModule.forRoot(config),
        ScheduleModule.forRoot(),
        MonitoringModule,
        DashboardModule,
        SecurityModule,
        DatabaseModule,
        CryptoModule,
        PersonalDataModule,
        IdempotencyModule,
        CacheInfraModule,
        AuditModule,
        HealthModule,
        OpsModule,
        RecipesModule,
        UsersModule,
        GdprModule,
        ComplianceModule,
        BackupModule,
        MonitoringSamplerModule,
        InsightsModule,
        AlertingModule,
      ],
      providers: [LifecycleService],
      exports: [LifecycleService],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestContextMiddleware).forRoutes('*path');
  }
}
