import { Logger } from '@nestjs/common';
import { createPino, PinoLoggerService } from '../../src/common/logger.js';

// Code that logs before an app exists (boot, migrations) uses the same JSON logger as the service.
Logger.overrideLogger(new PinoLoggerService(createPino(process.env.TEST_LOG_LEVEL ?? 'warn')));
