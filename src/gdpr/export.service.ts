import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectDataSource } from '@nestjs/typeorm';
import { createHash, randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service.js';
import { BackgroundTasks } from '../common/background-tasks.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { RequestContextStore } from '../common/request-context.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { openBlob, sealBlob } from '../security/crypto/envelope.js';
import { KMS_PROVIDER } from '../security/crypto/kms.js';
import type { KmsProvider } from '../security/crypto/kms.js';
import type { ExportFormat, ExportResponseDto } from './dto/gdpr.dto.js';
import { EXPORT_STORE } from './export-store.js';
import type { ExportStore } from './export-store.js';
import { ExportData, renderCsvZip, renderJson } from './export-file.js';
import { ExportRepository, ExportRow } from './export.repository.js';

const STALE_RUNNING_MS = 10 * 60_000;
const SWEEP_MS = 60_000;
/** Queued this long without progress: its instance is gone. */
const SWEEP_AGE_MS = 30_000;
const SWEEP_BATCH = 10;

export interface ExportDownload {
  fileName: string;
  contentType: string;
  sha256: string;
  body: Buffer;
}

function keyContext(exportId: string): Record<string, string> {
  return { purpose: 'gdpr-export', exportId };
}

export function fileNameOf(id: string): string {
  return `${id}.enc`;
}

/**
 * GDPR export (right of access / portability). A job gathers the user's data from
 * every registered provider in one consistent snapshot on the primary, renders it
 * (JSON, or a zip of CSVs), seals it with a fresh data key and stores it; the file
 * is only ever decrypted for a download with a single-use, expiring token.
 */
@Injectable()
export class ExportService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ExportService.name);
  private readonly tasks = new BackgroundTasks(this.logger);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(KMS_PROVIDER) private readonly kms: KmsProvider,
    @Inject(EXPORT_STORE) private readonly store: ExportStore,
    private readonly exports: ExportRepository,
    private readonly registry: PersonalDataRegistry,
    private readonly router: ReadRouterService,
    private readonly audit: AuditService,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.jobs.enabled) {
      return;
    }
    this.tasks.sweepEvery(
      this.scheduler,
      'gdpr-export-sweep',
      SWEEP_MS,
      () => this.exports.pending(SWEEP_AGE_MS, SWEEP_BATCH),
      (id) => this.process(id),
    );
  }

  async onModuleDestroy(): Promise<void> {
    await this.tasks.drain();
  }

  /** POST /v1/users/:id/exports */
  async request(userId: string, format: ExportFormat): Promise<ExportResponseDto> {
    const ctx = RequestContextStore.get();
    const row = await this.router.write(async (m) => {
      const found: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [userId]);
      if (found.length === 0) {
        throw new NotFoundError('user', userId);
      }
      const created = await this.exports.create(
        m,
        userId,
        format,
        this.config.gdpr.exportRetentionDays,
        ctx?.keyId ?? null,
        ctx?.requestId ?? null,
      );
      await this.audit.append(m, {
        eventType: 'export_requests',
        subjectId: userId,
        resource: `export:${created.id}`,
        action: 'requested',
        details: { format },
      });
      return created;
    });
    this.tasks.start('export', row.id, () => this.process(row.id));
    return this.toDto(row, null);
  }

  /** GET /v1/exports/:id — when ready, issues a fresh single-use download token. */
  async get(id: string): Promise<ExportResponseDto> {
    const row = await this.exports.getById(id);
    if (!row) {
      throw new NotFoundError('export', id);
    }
    if (row.status !== 'ready') {
      return this.toDto(row, null);
    }
    const token = randomBytes(32).toString('base64url');
    const expiresAt = await this.exports.issueToken(
      id,
      hashToken(token),
      this.config.gdpr.downloadTokenTtlSeconds,
    );
    return this.toDto(row, expiresAt ? { token, expiresAt } : null);
  }

  /** GET /v1/exports/:id/download?token= — uses the token up, decrypts for this response only. */
  async download(id: string, token: string): Promise<ExportDownload> {
    const row = await this.router.write(async (m) => {
      const consumed = await this.exports.consumeToken(m, id, hashToken(token));
      if (!consumed) {
        return null;
      }
      await this.audit.append(m, {
        eventType: 'user_data_access',
        subjectId: consumed.userId,
        resource: `export:${id}`,
        action: 'download',
      });
      return consumed;
    });
    if (!row || !row.wrappedKey || !row.keyId) {
      // One answer for unknown, used and expired tokens: nothing to probe.
      throw new DomainError(
        ErrorCode.Forbidden,
        'the download token is invalid, expired or already used',
      );
    }
    const key = await this.kms.decryptDataKey(
      { keyId: row.keyId, ciphertext: row.wrappedKey },
      keyContext(id),
    );
    const body = openBlob(key, await this.store.get(fileNameOf(id)));
    const sha256 = createHash('sha256').update(body).digest('hex');
    if (sha256 !== row.sha256) {
      throw new Error(`export ${id}: file does not match its recorded SHA-256`);
    }
    return {
      fileName: `export-${id}.${row.format === 'json' ? 'json' : 'zip'}`,
      contentType: row.format === 'json' ? 'application/json' : 'application/zip',
      sha256,
      body,
    };
  }

  /** Builds the file now; resolves when done (tests, the sweeper). */
  async process(id: string): Promise<void> {
    const row = await this.exports.claim(id, STALE_RUNNING_MS);
    if (!row) {
      return;
    }
    const started = Date.now();
    try {
      const generatedAt = new Date().toISOString();
      const data = await this.dataSource.transaction('REPEATABLE READ', async (m) => {
        const out: ExportData = {};
        for (const p of this.registry.all()) {
          out[p.kind] = await p.collect(m, row.userId);
        }
        return out;
      });
      const header = {
        format: 'dbu-export/1' as const,
        exportId: id,
        userId: row.userId,
        generatedAt,
      };
      const file = row.format === 'json' ? renderJson(header, data) : renderCsvZip(header, data);
      const key = await this.kms.generateDataKey(keyContext(id));
      await this.store.put(fileNameOf(id), sealBlob(key.plaintext, file));
      const counts = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.length]));
      await this.exports.ready(
        id,
        {
          name: fileNameOf(id),
          sizeBytes: file.length,
          sha256: createHash('sha256').update(file).digest('hex'),
          keyId: key.wrapped.keyId,
          wrapped: key.wrapped.ciphertext,
        },
        counts,
      );
      this.logger.log(
        {
          export: id,
          format: row.format,
          bytes: file.length,
          counts,
          tookMs: Date.now() - started,
        },
        'export ready',
      );
    } catch (err) {
      const reason = (err as Error).message;
      this.logger.error({ export: id, error: reason }, 'export failed');
      await this.exports.fail(id, reason);
    }
  }

  private toDto(
    r: ExportRow,
    download: { token: string; expiresAt: Date } | null,
  ): ExportResponseDto {
    return {
      id: r.id,
      format: r.format,
      status: r.status,
      createdAt: new Date(r.createdAt).toISOString(),
      completedAt: r.completedAt ? new Date(r.completedAt).toISOString() : null,
      expiresAt: new Date(r.expiresAt).toISOString(),
      sizeBytes: r.sizeBytes === null ? null : Number(r.sizeBytes),
      sha256: r.sha256,
      itemCounts: r.itemCounts,
      error: r.error,
      downloadUrl: download
        ? `/v1/exports/${r.id}/download?token=${encodeURIComponent(download.token)}`
        : null,
      downloadExpiresAt: download ? new Date(download.expiresAt).toISOString() : null,
    };
  }
}

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
