import { Module } from '@nestjs/common';
import { AlertChannels } from './alert-channels.js';
import { AlertDeliveryService } from './alert-delivery.service.js';
import { AlertEvaluatorService } from './alert-evaluator.service.js';
import { AlertingMetrics } from './alerting.metrics.js';
import { AlertingRepository } from './alerting.repository.js';
import { AlertsController } from './alerts.controller.js';
import { AlertsService } from './alerts.service.js';

/** Alert rules over the metrics registry, their state, silences and notifications. */
@Module({
  controllers: [AlertsController],
  providers: [
    AlertingMetrics,
    AlertingRepository,
    AlertChannels,
    AlertEvaluatorService,
    AlertDeliveryService,
    AlertsService,
  ],
  exports: [AlertEvaluatorService, AlertDeliveryService],
})
export class AlertingModule {}
