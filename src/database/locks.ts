/**
 * Advisory lock keys, as (namespace, key) pairs so they cannot collide with
 * other users of the same database. Only ever taken on direct connections
 * (session locks do not survive PgBouncer transaction pooling).
 */
export const LOCK_NAMESPACE = 0x44425531; // "DBU1"

export enum AdvisoryLock {
  Migrations = 1,
  JobHeartbeat = 100,
  VectorIndexRebuild = 200,
  JobAuditMaintenance = 300,
  ComplianceReport = 400,
  ExportPurge = 500,
  Failover = 600,
  PgBouncerPoolControl = 700,
  BackupSchedule = 800,
  BackupRunning = 801,
  BackupValidation = 802,
  RestoreSweep = 810,
  MonitoringSampler = 900,
  InsightsSampler = 910,
  /** Transaction lock of one alert evaluation: two leaders for a moment still take turns. */
  AlertEvaluation = 920,
  ReplicaAutoscaler = 930,
}
