import { Module } from '@nestjs/common';
import { DashboardAssets } from './dashboard-assets.js';
import { DashboardSeriesService } from './dashboard-series.service.js';
import { DashboardController } from './dashboard.controller.js';

/** GET /dashboard: live charts from the metrics registry, behind an ops:read sign-in. */
@Module({
  controllers: [DashboardController],
  providers: [DashboardSeriesService, DashboardAssets],
})
export class DashboardModule {}
