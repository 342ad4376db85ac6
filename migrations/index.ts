import { Extensions1795651200000 } from './1795651200000-Extensions.js';
import { OpsTables1795651201000 } from './1795651201000-OpsTables.js';
import { Recipes1795651202000 } from './1795651202000-Recipes.js';
import { RecipesHnswIndex1795651203000 } from './1795651203000-RecipesHnswIndex.js';
import { Users1795651204000 } from './1795651204000-Users.js';
import { AuditLog1795651205000 } from './1795651205000-AuditLog.js';
import { Consent1795651206000 } from './1795651206000-Consent.js';
import { EncryptPersonalData1795651207000 } from './1795651207000-EncryptPersonalData.js';
import { GdprRequests1795651208000 } from './1795651208000-GdprRequests.js';
import { IdempotencyKeys1795651209000 } from './1795651209000-IdempotencyKeys.js';
import { ServiceRolePrivileges1795651210000 } from './1795651210000-ServiceRolePrivileges.js';
import { AuditLogOwnerOnly1795651211000 } from './1795651211000-AuditLogOwnerOnly.js';
import { Backups1795651212000 } from './1795651212000-Backups.js';
import { BackupChecksum1795651213000 } from './1795651213000-BackupChecksum.js';
import { Insights1795651214500 } from './1795651214500-Insights.js';
import { Alerting1795651216500 } from './1795651216500-Alerting.js';
import { HnswEfConstruction1795651217500 } from './1795651217500-HnswEfConstruction.js';
import { IdempotencyResponseHeaders1795651218500 } from './1795651218500-IdempotencyResponseHeaders.js';

/** Every migration, in order. Listed (not globbed) so bundlers and Jest's ESM loader see them. */
export const MIGRATIONS = [
  Extensions1795651200000,
  OpsTables1795651201000,
  Recipes1795651202000,
  RecipesHnswIndex1795651203000,
  Users1795651204000,
  AuditLog1795651205000,
  Consent1795651206000,
  EncryptPersonalData1795651207000,
  GdprRequests1795651208000,
  IdempotencyKeys1795651209000,
  ServiceRolePrivileges1795651210000,
  AuditLogOwnerOnly1795651211000,
  Backups1795651212000,
  BackupChecksum1795651213000,
  Insights1795651214500,
  Alerting1795651216500,
  HnswEfConstruction1795651217500,
  IdempotencyResponseHeaders1795651218500,
];
