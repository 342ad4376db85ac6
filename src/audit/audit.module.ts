import { Global, Module } from '@nestjs/common';
import { DATA_CHANGE_SINK } from '../common/data-change.js';
import { AuditKeysService } from './audit-keys.service.js';
import { AuditMaintenanceJob } from './audit-maintenance.job.js';
import { AuditPersonalData } from './audit.personal-data.js';
import { AuditController } from './audit.controller.js';
import { AuditRepository } from './audit.repository.js';
import { AuditService } from './audit.service.js';

/** Global: every module records its data changes here, in its own transaction. */
@Global()
@Module({
  controllers: [AuditController],
  providers: [
    AuditRepository,
    AuditService,
    AuditKeysService,
    AuditPersonalData,
    AuditMaintenanceJob,
    { provide: DATA_CHANGE_SINK, useExisting: AuditService },
  ],
  exports: [AuditService, AuditMaintenanceJob, DATA_CHANGE_SINK],
})
export class AuditModule {}
