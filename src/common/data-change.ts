import type { EntityManager } from 'typeorm';

export type DataChangeAction = 'create' | 'update' | 'delete';

export interface DataChange {
  entity: string;
  entityId: string;
  action: DataChangeAction;
  /** API key id of the caller, when there is one. */
  actor?: string;
  /** Names of the fields that changed (never their values: they may be personal data). */
  fields?: string[];
}

/**
 * Where data modifications are recorded, inside the writing transaction. The audit
 * module (append-only, hash-chained log) implements it; until then a logger does.
 */
export interface DataChangeSink {
  record(manager: EntityManager, change: DataChange): Promise<void>;
  /** Several changes of one transaction, in order (a batch write: one statement, not one each). */
  recordMany(manager: EntityManager, changes: readonly DataChange[]): Promise<void>;
}

export const DATA_CHANGE_SINK = Symbol('DATA_CHANGE_SINK');
