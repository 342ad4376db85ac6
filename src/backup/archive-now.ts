import type { Logger } from '@nestjs/common';
import type { BackupProvider } from './backup.types.js';

/**
 * Archives the WAL written so far (`BackupProvider.archiveNow`) so that a manifest's LSN
 * can be restored at once. A failure is logged, not thrown: the backup stays good and its
 * LSN becomes restorable when PostgreSQL's `archive_timeout` switches the segment.
 */
export async function archiveNow(
  provider: BackupProvider,
  logger: Logger,
  fields: Record<string, unknown>,
): Promise<void> {
  const started = Date.now();
  try {
    const segment = await provider.archiveNow();
    if (segment) {
      logger.log(
        { ...fields, segment, ms: Date.now() - started },
        'WAL through the manifest LSN archived',
      );
    }
  } catch (err) {
    logger.warn(
      { ...fields, ms: Date.now() - started, error: (err as Error).message },
      'could not archive the WAL through the manifest LSN now; it becomes restorable at the next archive_timeout',
    );
  }
}
