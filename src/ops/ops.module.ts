import { Module } from '@nestjs/common';
import { HeartbeatJob } from './heartbeat.job.js';
import { HeartbeatRepository } from './heartbeat.repository.js';
import { OpsController } from './ops.controller.js';
import { OpsService } from './ops.service.js';
import { ProbesRepository } from './probes.repository.js';

@Module({
  controllers: [OpsController],
  providers: [OpsService, ProbesRepository, HeartbeatRepository, HeartbeatJob],
  exports: [HeartbeatJob],
})
export class OpsModule {}
