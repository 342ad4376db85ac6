import type pg from 'pg';
import type { DetailedRecoveryWindow } from './recovery-window.js';

/** What a backup is for: its schedule (and so its retention), or taken on request. */
export const BackupKind = {
  Daily: 'daily',
  Weekly: 'weekly',
  OnDemand: 'on-demand',
  Base: 'base',
} as const;
export type BackupKind = (typeof BackupKind)[keyof typeof BackupKind];

/** pgBackRest's backup types; RDS snapshots are `snapshot`. */
export const BackupType = {
  Full: 'full',
  Diff: 'diff',
  Incr: 'incr',
  Snapshot: 'snapshot',
} as const;
export type BackupType = (typeof BackupType)[keyof typeof BackupType];

export type BackupStatus = 'running' | 'succeeded' | 'failed' | 'expired';
/** A backup is good only once a validation restored it and every check passed. */
export type BackupVerdict = 'unvalidated' | 'good' | 'bad';
export type ValidationStatus = 'running' | 'passed' | 'failed';
export type RestoreStatus = 'running' | 'ready' | 'failed' | 'expired';

/** The spec's four validation types, each reported on its own. */
export const ValidationCheck = {
  RestoreTest: 'restore_test',
  DataIntegrity: 'data_integrity_check',
  Performance: 'performance_validation',
  RecoveryTime: 'recovery_time_measurement',
} as const;
export type ValidationCheck = (typeof ValidationCheck)[keyof typeof ValidationCheck];

/** One backup as its provider knows it (a pgBackRest backup set, an RDS snapshot). */
export interface ProviderBackup {
  /** pgBackRest label (`20261130-201000F`) or RDS snapshot identifier. */
  label: string;
  type: BackupType;
  startedAt: Date;
  stoppedAt: Date;
  /** WAL positions of the backup's start and its consistency point. */
  startLsn: string | null;
  stopLsn: string | null;
  /** Size of the database the backup holds, and what it takes in the repository. */
  sizeBytes: number | null;
  repoSizeBytes: number | null;
  /**
   * The set's own checksum: for pgBackRest the SHA-1 sealing its manifest, which lists
   * every file's SHA-1; null where the provider has none (RDS snapshots) or it was not read.
   */
  checksum: string | null;
  /** The labels this one depends on (a differential's full). */
  references: string[];
}

/** How far back and up to where the cluster can be restored; `gaps` break the window. */
export interface RecoveryWindow {
  from: Date | null;
  to: Date | null;
  gaps: Array<{ afterWal: string; beforeWal: string }>;
}

/** Where to stop recovery: a backup's own consistency point, a time, or an LSN. */
export type RecoveryTarget =
  | { kind: 'backup'; label: string; lsn?: string }
  | { kind: 'time'; time: Date }
  | { kind: 'lsn'; lsn: string };

/** A running throwaway PostgreSQL instance restored from a backup. */
export interface ScratchInstance {
  dir: string;
  host: string;
  port: number;
  /** When the restore started and when the instance accepted connections. */
  restoreStartedAt: Date;
  readyAt: Date;
}

/**
 * A temporary PostgreSQL instance a provider restored (validation, point-in-time restore):
 * a pgBackRest scratch instance, or an RDS DB instance. The checks reach it through
 * `clientConfig`; `stop()` removes it (idempotent).
 */
export interface RestoredInstance {
  /** What identifies it for crash cleanup: the scratch folder, or the DB instance identifier. */
  readonly ref: string;
  readonly host: string;
  readonly port: number;
  readonly restoreStartedAt: Date;
  readonly readyAt: Date;
  clientConfig(database: string): pg.ClientConfig;
  /** Still serving (its server process, or its DB instance status)? */
  alive(): Promise<boolean>;
  /** The tail of its server log, for reports; a note when the provider has none. */
  logTail(): Promise<string>;
  stop(): Promise<void>;
}

export interface RestoreOptions {
  /** Name prefix of the temporary instance (`<database>-validation-<id>`). */
  name: string;
  /** What it is for (a tag on RDS). */
  purpose: 'validation' | 'restore';
  /** Called as soon as the instance exists, before it is ready (crash cleanup needs its ref). */
  onPrepared?: (ref: string) => Promise<void>;
}

/** A setting of the provider that differs from the service's configuration. */
export interface SettingsDrift {
  setting: string;
  expected: string;
  actual: string;
}

/**
 * A backup provider: pgBackRest for self-managed clusters, RDS on AWS. The service keeps
 * the registry, schedules, manifests and checks; a provider only moves the bytes.
 */
export interface BackupProvider {
  readonly name: 'pgbackrest' | 'rds';
  /** Takes a backup and waits for it (`kind` tags it where the provider keeps tags). */
  backup(type: BackupType, kind?: BackupKind): Promise<ProviderBackup>;
  /** Every backup the provider holds now. */
  list(): Promise<ProviderBackup[]>;
  recoveryWindow(): Promise<RecoveryWindow>;
  /** The window with its restorable ranges (what restores are checked against). */
  detailedWindow(): Promise<DetailedRecoveryWindow>;
  /** Restores `target` into a temporary instance and waits until it accepts connections. */
  restore(target: RecoveryTarget, opts: RestoreOptions): Promise<RestoredInstance>;
  /** How to reach a temporary instance recorded by `ref`, `host` and `port` (a restore row). */
  connectionFor(
    ref: string,
    host: string | null,
    port: number | null,
    database: string,
  ): pg.ClientConfig;
  /** Removes the temporary instance `ref` (left by a crashed process, or expired). */
  removeRestored(ref: string): Promise<void>;
  /** Removes this service's temporary instances named `prefix…` that are not in `keep`. */
  removeOrphans(prefix: string, keep: Set<string>): Promise<string[]>;
  /** Checks the stored copy of a backup; null when the provider has no such check. */
  verify(label: string): Promise<{ ok: boolean; problems: string[] } | null>;
  /** Provider settings that differ from the configuration (RDS automated backups); [] when none. */
  checkSettings(): Promise<SettingsDrift[]>;
  /**
   * Makes every WAL record written so far restorable now, not at the next `archive_timeout`
   * (a manifest's LSN on a quiet cluster): the archived segment's name, or null when the
   * provider archives on its own schedule (RDS uploads WAL every 5 minutes).
   */
  archiveNow(): Promise<string | null>;
}

/**
 * Written at backup time, checked by validation: the state of the application tables at
 * one exact WAL position `lsn` (at or after the backup's consistency point), taken on a
 * replica whose replay was paused there, so that a restore with `recovery_target_lsn =
 * lsn` (exclusive) must reproduce it row for row.
 */
export interface BackupManifest {
  lsn: string;
  takenAt: string;
  /** The marker row written just before the backup (must be in the restored copy). */
  markerBefore: string;
  /** A marker written after `lsn` (must not be in the restored copy). */
  markerAfter: string;
  /** Per application table: row count and an order-independent checksum of its rows. */
  tables: Record<string, { rows: number; checksum: string }>;
  /** A few nearest-neighbour queries (by a recipe's own embedding) and their exact answers. */
  vectorQueries: Array<{ recipeId: string; limit: number; ids: string[] }>;
  /**
   * false: no replica could be paused, so the manifest was read on the primary in one
   * REPEATABLE READ snapshot and `lsn` is `pg_current_wal_lsn()` at that time: approximate.
   */
  exact: boolean;
  /** The node the manifest was read on (`host:port`). */
  node: string;
}
