import type { AppConfig } from '../config/app-config.js';
import type { BackupProvider } from './backup.types.js';
import { PgBackRestProvider } from './pgbackrest.provider.js';
import { RdsProvider } from './rds.provider.js';

export const BACKUP_PROVIDER = Symbol('BACKUP_PROVIDER');

/** The provider `BACKUP_PROVIDER` names; null when backups are off. */
export function createBackupProvider(config: AppConfig): BackupProvider | null {
  switch (config.backup.provider) {
    case 'pgbackrest':
      return new PgBackRestProvider(config.backup);
    case 'rds':
      return new RdsProvider(config.backup, config.database.ssl);
    case 'off':
      return null;
  }
}
