import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { AuditService } from '../audit/audit.service.js';
import { invalidRequest, NotFoundError } from '../common/errors.js';
import { decodeSeqCursor, encodeSeqCursor } from '../common/pagination.js';
import { RequestContextStore } from '../common/request-context.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { CONSENT_PURPOSES, ConsentPurpose, isPurpose } from './consent.purposes.js';
import { ConsentEventRow, ConsentRepository, PolicyRow } from './consent.repository.js';
import type {
  ConsentEvent,
  EffectiveConsent,
  PolicyResponse,
  PublishPolicyDto,
  SetConsentDto,
} from './dto/consent.dto.js';

/**
 * Versioned, granular consent. Every grant or withdrawal is stored against the exact
 * policy version shown, with source and actor; the effective state per purpose is
 * derived from that history. A grant of an older version is `outdated` once a newer
 * version is in effect: it no longer allows the purpose until the user re-consents.
 */
@Injectable()
export class ConsentService {
  constructor(
    private readonly consents: ConsentRepository,
    private readonly router: ReadRouterService,
    private readonly audit: AuditService,
  ) {}

  async policies(): Promise<PolicyResponse[]> {
    const rows = await this.consents.policies();
    const now = Date.now();
    return CONSENT_PURPOSES.map((purpose) => {
      const versions = rows.filter((r) => r.purpose === purpose);
      return {
        purpose,
        currentVersion: currentVersion(versions, now),
        versions: versions.map((v) => ({
          version: v.version,
          textSha256: v.textSha256,
          effectiveAt: new Date(v.effectiveAt).toISOString(),
          text: v.text,
        })),
      };
    });
  }

  async publish(dto: PublishPolicyDto): Promise<PolicyResponse> {
    const sha = createHash('sha256').update(dto.text, 'utf8').digest('hex');
    await this.router.write((m) =>
      this.consents.publish(m, dto.purpose, dto.text, sha, dto.effectiveAt ?? null),
    );
    return (await this.policies()).find((p) => p.purpose === dto.purpose)!;
  }

  async set(userId: string, purpose: string, dto: SetConsentDto): Promise<EffectiveConsent> {
    if (!isPurpose(purpose)) {
      throw invalidRequest({
        field: 'purpose',
        message: `purpose must be one of ${CONSENT_PURPOSES.join(', ')}`,
      });
    }
    await this.router.write(async (m) => {
      const user: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [userId]);
      if (user.length === 0) {
        throw new NotFoundError('user', userId);
      }
      if (!(await this.consents.policyExists(m, purpose, dto.policyVersion))) {
        throw invalidRequest({
          field: 'policyVersion',
          message: `policyVersion ${dto.policyVersion} does not exist for ${purpose}`,
        });
      }
      const actor = RequestContextStore.get()?.keyId ?? null;
      await this.consents.record(
        m,
        userId,
        purpose,
        dto.policyVersion,
        dto.granted,
        dto.source,
        actor,
      );
      await this.audit.append(m, {
        eventType: 'consent_changes',
        subjectId: userId,
        resource: `consent:${purpose}`,
        action: dto.granted ? 'grant' : 'withdraw',
        details: { policyVersion: dto.policyVersion, source: dto.source },
      });
    });
    return (await this.effective(userId)).find((c) => c.purpose === purpose)!;
  }

  async effective(userId: string): Promise<EffectiveConsent[]> {
    // Only each purpose's newest event counts: a user whose history holds thousands of
    // changes costs one index probe per purpose, not a read of the whole history.
    // Likewise only each purpose's newest version in effect, not every version's text.
    await this.mustExist(userId);
    const [latest, versions] = await Promise.all([
      this.consents.latestPerPurpose(userId, CONSENT_PURPOSES),
      this.consents.currentVersions(new Date()),
    ]);
    const events = latest.map(toEvent);
    return CONSENT_PURPOSES.map((purpose) => {
      const current = versions.find((v) => v.purpose === purpose)?.version ?? null;
      const last = events.find((e) => e.purpose === purpose);
      if (!last) {
        return {
          purpose,
          state: 'none',
          granted: false,
          policyVersion: null,
          currentPolicyVersion: current,
          since: null,
        };
      }
      const state = !last.granted
        ? 'withdrawn'
        : current !== null && last.policyVersion < current
          ? 'outdated'
          : 'granted';
      return {
        purpose,
        state,
        granted: state === 'granted',
        policyVersion: last.policyVersion,
        currentPolicyVersion: current,
        since: last.occurredAt,
      };
    });
  }

  /** "May I use this user's data for this purpose?" — one call for every module. */
  async mayUse(userId: string, purpose: ConsentPurpose): Promise<boolean> {
    return (await this.effective(userId)).some((c) => c.purpose === purpose && c.granted);
  }

  /** A page of the history, oldest first: `{ items, nextCursor }` (opaque cursor). */
  async historyPage(
    userId: string,
    limit: number,
    cursor?: string,
  ): Promise<{ items: ConsentEvent[]; nextCursor: string | null }> {
    const afterId = cursor === undefined ? 0 : decodeSeqCursor(cursor);
    await this.mustExist(userId);
    const rows = await this.consents.historyPage(userId, afterId, limit);
    return {
      items: rows.map(toEvent),
      nextCursor: rows.length === limit ? encodeSeqCursor(rows[rows.length - 1].id) : null,
    };
  }

  private async mustExist(userId: string): Promise<void> {
    const exists = await this.router.read(async (m) => {
      const rows: unknown[] = await m.query(`SELECT 1 FROM users WHERE id = $1`, [userId]);
      return rows.length > 0;
    });
    if (!exists) {
      throw new NotFoundError('user', userId);
    }
  }
}

/** The newest version already in effect. */
function currentVersion(versions: PolicyRow[], now: number): number | null {
  const inEffect = versions.filter((v) => new Date(v.effectiveAt).getTime() <= now);
  return inEffect.length ? Math.max(...inEffect.map((v) => v.version)) : null;
}

function toEvent(r: ConsentEventRow): ConsentEvent {
  return {
    purpose: r.purpose,
    policyVersion: r.policyVersion,
    granted: r.granted,
    source: r.source,
    actor: r.actor,
    occurredAt: new Date(r.occurredAt).toISOString(),
  };
}
