import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';

export interface PolicyRow {
  purpose: string;
  version: number;
  text: string;
  textSha256: string;
  effectiveAt: Date;
}

export interface ConsentEventRow {
  purpose: string;
  policyVersion: number;
  granted: boolean;
  source: string;
  actor: string | null;
  occurredAt: Date;
}

const POLICY = `purpose, version, text, text_sha256 AS "textSha256", effective_at AS "effectiveAt"`;
const EVENT = `purpose, policy_version AS "policyVersion", granted, source, actor, occurred_at AS "occurredAt"`;

@Injectable()
export class ConsentRepository {
  constructor(private readonly router: ReadRouterService) {}

  policies(): Promise<PolicyRow[]> {
    return this.router.read((m) =>
      m.query(`SELECT ${POLICY} FROM consent_policies ORDER BY purpose, version`),
    );
  }

  /** Per purpose, the newest version in effect at `at` (purposes with none are absent). */
  currentVersions(at: Date): Promise<Array<{ purpose: string; version: number }>> {
    return this.router.read((m) =>
      m.query(
        `SELECT purpose, max(version)::int AS version FROM consent_policies
          WHERE effective_at <= $1 GROUP BY purpose`,
        [at],
      ),
    );
  }

  /** Serialised per purpose by a transaction-scoped advisory lock on the purpose. */
  async publish(
    m: EntityManager,
    purpose: string,
    text: string,
    sha256: string,
    effectiveAt: string | null,
  ): Promise<PolicyRow> {
    await m.query(`SELECT pg_advisory_xact_lock(hashtext('consent_policy:' || $1))`, [purpose]);
    const rows: PolicyRow[] = await m.query(
      `INSERT INTO consent_policies (purpose, version, text, text_sha256, effective_at)
       SELECT $1, COALESCE(max(version), 0) + 1, $2, $3, COALESCE($4::timestamptz, now())
         FROM consent_policies WHERE purpose = $1
       RETURNING ${POLICY}`,
      [purpose, text, sha256, effectiveAt],
    );
    return rows[0];
  }

  async policyExists(m: EntityManager, purpose: string, version: number): Promise<boolean> {
    const rows: unknown[] = await m.query(
      `SELECT 1 FROM consent_policies WHERE purpose = $1 AND version = $2`,
      [purpose, version],
    );
    return rows.length > 0;
  }

  async record(
    m: EntityManager,
    userId: string,
    purpose: string,
    version: number,
    granted: boolean,
    source: string,
    actor: string | null,
  ): Promise<ConsentEventRow> {
    const rows: ConsentEventRow[] = await m.query(
      `INSERT INTO consent_events (user_id, purpose, policy_version, granted, source, actor)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${EVENT}`,
      [userId, purpose, version, granted, source, actor],
    );
    return rows[0];
  }

  /** The user's history in the caller's transaction (export). */
  historyIn(m: EntityManager, userId: string): Promise<ConsentEventRow[]> {
    return m.query(`SELECT ${EVENT} FROM consent_events WHERE user_id = $1 ORDER BY id`, [userId]);
  }

  /**
   * Erasure only: the history is otherwise immutable; the trigger lets a DELETE
   * through when the transaction says it is an erasure (SET LOCAL, so PgBouncer's
   * transaction pooling keeps no session state).
   */
  async eraseUser(m: EntityManager, userId: string): Promise<number> {
    await m.query(`SELECT set_config('dbu.erasure', 'on', true)`);
    const rows = await queryRows(m, `DELETE FROM consent_events WHERE user_id = $1 RETURNING 1`, [
      userId,
    ]);
    return rows.length;
  }

  /**
   * The user's newest event per purpose, which is all the effective state depends on: one
   * index probe per purpose (consent_events_user_idx), however long the history grows.
   */
  latestPerPurpose(userId: string, purposes: readonly string[]): Promise<ConsentEventRow[]> {
    return this.router.read((m) =>
      m.query(
        `SELECT e.* FROM unnest($2::text[]) AS p(purpose)
           CROSS JOIN LATERAL (
             SELECT ${EVENT} FROM consent_events
              WHERE user_id = $1 AND purpose = p.purpose ORDER BY id DESC LIMIT 1) e`,
        [userId, purposes],
      ),
    );
  }

  /** One page of a user's events, oldest first, after event `afterId`; each with its id. */
  historyPage(
    userId: string,
    afterId: number,
    limit: number,
  ): Promise<Array<ConsentEventRow & { id: string }>> {
    return this.router.read((m) =>
      m.query(
        `SELECT id::text AS id, ${EVENT} FROM consent_events
          WHERE user_id = $1 AND id > $2::bigint ORDER BY id LIMIT $3::int`,
        [userId, afterId, limit],
      ),
    );
  }
}
