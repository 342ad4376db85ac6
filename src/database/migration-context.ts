import type { AppConfig } from '../config/app-config.js';
import type { BootTopology } from './boot.js';

/**
 * What a data migration may need beyond SQL (config, the writer's address), set by
 * the runner for the duration of a run. Only migrations that transform data with
 * application code (e.g. encrypting existing rows) read it.
 */
let current: { config: AppConfig; topology: BootTopology } | null = null;

export function setMigrationContext(
  ctx: { config: AppConfig; topology: BootTopology } | null,
): void {
  current = ctx;
}

export function migrationContext(): { config: AppConfig; topology: BootTopology } {
  if (!current) {
    throw new Error('this migration needs the migration runner (npm run migration:run or boot)');
  }
  return current;
}
