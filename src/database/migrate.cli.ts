import 'reflect-metadata';
import { createPino, PinoLoggerService } from '../common/logger.js';
import { Logger } from '@nestjs/common';
import { ConfigValidationError, loadConfig } from '../config/app-config.js';
import { discoverTopology, revertLastMigrationLocked, runMigrationsLocked } from './boot.js';

/** `npm run migration:run` / `migration:revert`: same config, topology and lock as the service. */
async function main(): Promise<void> {
  const config = loadConfig();
  Logger.overrideLogger(new PinoLoggerService(createPino(config.logLevel)));
  const topology = await discoverTopology(config);
  if (process.argv[2] === 'revert') {
    await revertLastMigrationLocked(config, topology);
  } else {
    await runMigrationsLocked(config, topology);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof ConfigValidationError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
