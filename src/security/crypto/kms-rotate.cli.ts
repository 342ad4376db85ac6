import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createPino, PinoLoggerService } from '../../common/logger.js';
import { ConfigValidationError, loadConfig } from '../../config/app-config.js';
import { discoverTopology } from '../../database/boot.js';
import { rewrapAll } from './key-rotation.js';
import { rotateLocalKeyFile } from './local-kms.provider.js';
import { createPersonalDataCrypto } from './personal-data-crypto.js';

/**
 * `npm run kms:rotate`: with the local provider and a key file, adds a new master
 * key version and makes it current; then (any provider) re-wraps every data key
 * under the current master key. `--rewrap-only` skips the new version (e.g. after
 * pointing KMS_AWS_KEY_ID at a new AWS key).
 */
async function main(): Promise<void> {
  const config = loadConfig();
  Logger.overrideLogger(new PinoLoggerService(createPino(config.logLevel)));
  const logger = new Logger('kms:rotate');
  if (!process.argv.includes('--rewrap-only')) {
    if (config.crypto.provider !== 'local' || config.crypto.local.keys) {
      throw new Error(
        'a new master key version is only made for the local provider with a key file; use --rewrap-only',
      );
    }
    if (config.crypto.local.currentVersion) {
      throw new Error('KMS_LOCAL_CURRENT_VERSION pins the version: unset it to rotate');
    }
    const rotated = await rotateLocalKeyFile(config.crypto.local.keyFile);
    logger.log(rotated, 'local master key rotated');
  }
  const topology = await discoverTopology(config);
  const crypto = await createPersonalDataCrypto(config, topology.writer.address, { cache: false });
  try {
    const outcome = await rewrapAll(config, topology.writer.address, crypto);
    logger.log(outcome, 'data keys re-wrapped');
  } finally {
    await crypto.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof ConfigValidationError ? err.message : err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
