import { Module } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ConsentController } from './consent.controller.js';
import { ConsentPersonalData } from './consent.personal-data.js';
import { ConsentRepository } from './consent.repository.js';
import { ConsentService } from './consent.service.js';
import { ErasureRepository } from './erasure.repository.js';
import { ErasureService } from './erasure.service.js';
import { EXPORT_STORE, LocalExportStore } from './export-store.js';
import { ExportPersonalData } from './export.personal-data.js';
import { ExportPurgeJob } from './export-purge.job.js';
import { ExportRepository } from './export.repository.js';
import { ExportService } from './export.service.js';
import { GdprController } from './gdpr.controller.js';

@Module({
  controllers: [ConsentController, GdprController],
  providers: [
    ConsentRepository,
    ConsentService,
    ConsentPersonalData,
    ExportRepository,
    ExportService,
    ExportPersonalData,
    ExportPurgeJob,
    ErasureRepository,
    ErasureService,
    {
      provide: EXPORT_STORE,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => new LocalExportStore(config.gdpr.exportDir),
    },
  ],
  exports: [ConsentService, ErasureService, ExportService, ExportPurgeJob],
})
export class GdprModule {}
