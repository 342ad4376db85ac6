import { Module } from '@nestjs/common';
import { InsightsHistoryRepository } from './insights-history.repository.js';
import { InsightsSamplerService } from './insights-sampler.service.js';
import { InsightsController } from './insights.controller.js';
import { InsightsService } from './insights.service.js';
import { LiveActivityRepository } from './live-activity.repository.js';

/** Performance insights: GET /v1/ops/insights/* and the leader-only collector behind them. */
@Module({
  controllers: [InsightsController],
  providers: [
    InsightsService,
    InsightsSamplerService,
    InsightsHistoryRepository,
    LiveActivityRepository,
  ],
  exports: [InsightsSamplerService],
})
export class InsightsModule {}
