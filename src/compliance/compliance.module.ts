import { Module } from '@nestjs/common';
import { ComplianceReportJob } from './compliance-report.job.js';
import { ComplianceController } from './compliance.controller.js';
import { ComplianceRepository } from './compliance.repository.js';
import { ComplianceService } from './compliance.service.js';

/** Monthly compliance reports over the GDPR bookkeeping and the audit log. */
@Module({
  controllers: [ComplianceController],
  providers: [ComplianceRepository, ComplianceService, ComplianceReportJob],
  exports: [ComplianceService],
})
export class ComplianceModule {}
