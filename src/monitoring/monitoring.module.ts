import { Global, Module } from '@nestjs/common';
import { CloudWatchPublisher } from './cloudwatch/cloudwatch-publisher.service.js';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService, CloudWatchPublisher],
  exports: [MetricsService],
})
export class MonitoringModule {}
