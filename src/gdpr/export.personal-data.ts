import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { EXPORT_STORE } from './export-store.js';
import type { ExportStore } from './export-store.js';
import { fileNameOf } from './export.service.js';
import { ExportRepository } from './export.repository.js';

/**
 * A user's earlier exports are personal data too: listed in an export, deleted by
 * erasure — rows in the transaction, files after the commit (a crash in between
 * leaves orphan files that the purge job deletes).
 */
@Injectable()
export class ExportPersonalData implements OnModuleInit {
  private readonly logger = new Logger(ExportPersonalData.name);
  /** Export ids of an erasure in progress: files to delete, then to verify gone. */
  private readonly erased = new Map<string, string[]>();

  constructor(
    private readonly registry: PersonalDataRegistry,
    private readonly exports: ExportRepository,
    @Inject(EXPORT_STORE) private readonly store: ExportStore,
  ) {}

  onModuleInit(): void {
    this.registry.register({
      kind: 'exports',
      tables: [{ table: 'gdpr_exports', userColumn: 'user_id' }],
      erasureOrder: 5,
      collect: async (m, userId) =>
        (await this.exports.listFor(m, userId)).map((e) => ({
          id: e.id,
          format: e.format,
          status: e.status,
          createdAt: new Date(e.createdAt).toISOString(),
          expiresAt: new Date(e.expiresAt).toISOString(),
        })),
      erase: async (m, userId) => {
        const ids = await this.exports.deleteFor(m, userId);
        this.erased.set(userId, ids);
        return ids.length;
      },
      afterErase: async (userId) => {
        const ids = this.erased.get(userId) ?? [];
        for (const id of ids) {
          await this.store.delete(fileNameOf(id));
        }
        if (ids.length > 0) {
          this.logger.log({ files: ids.length }, 'erased export files');
        }
      },
      leftOutside: async (userId) => {
        const ids = this.erased.get(userId) ?? [];
        this.erased.delete(userId);
        const files = new Set(await this.store.list());
        return ids.filter((id) => files.has(fileNameOf(id))).length;
      },
    });
  }
}
