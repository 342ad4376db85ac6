import { Injectable, OnModuleInit } from '@nestjs/common';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { AuditService } from './audit.service.js';

const PAGE = 1_000;

/**
 * The audit entries about a user, in their export. Erasure deletes none: the log
 * is immutable and kept 7 years, and holds the user only as a keyed pseudonym
 * with details sealed — no table row there names the user id.
 */
@Injectable()
export class AuditPersonalData implements OnModuleInit {
  constructor(
    private readonly registry: PersonalDataRegistry,
    private readonly audit: AuditService,
  ) {}

  onModuleInit(): void {
    this.registry.register({
      kind: 'audit_entries',
      tables: [],
      erasureOrder: 0,
      collect: async (_m, userId) => {
        const out: Array<Record<string, unknown>> = [];
        let afterSeq = 0;
        for (;;) {
          const rows = await this.audit.list({ subjectId: userId, afterSeq, limit: PAGE });
          for (const r of rows) {
            out.push({
              seq: r.seq,
              occurredAt: new Date(r.occurredAtMs).toISOString(),
              eventType: r.eventType,
              resource: r.resource,
              action: r.action,
              actor: r.actor,
              details: r.details,
            });
          }
          if (rows.length < PAGE) {
            return out;
          }
          afterSeq = rows[rows.length - 1].seq;
        }
      },
      erase: () => Promise.resolve(0),
    });
  }
}
