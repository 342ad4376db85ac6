import { Module } from '@nestjs/common';
import { MonitoringSamplerService } from './monitoring-sampler.service.js';
import { SamplerMetrics } from './sampler.metrics.js';

/**
 * The sampler of PostgreSQL, Redis and PgBouncer figures. Apart from MonitoringModule
 * (the registry and /metrics, imported first by everything) because it depends on the
 * database and cache modules, which themselves record into the registry.
 */
@Module({
  providers: [SamplerMetrics, MonitoringSamplerService],
  exports: [MonitoringSamplerService],
})
export class MonitoringSamplerModule {}
