import { Injectable, Logger } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import type { DataChange, DataChangeSink } from './data-change.js';

/** Placeholder sink until the audit module records changes in the database. */
@Injectable()
export class LoggingDataChangeSink implements DataChangeSink {
  private readonly logger = new Logger('DataChange');

  async record(_manager: EntityManager, change: DataChange): Promise<void> {
    this.logger.debug({ ...change }, 'data changed');
  }
}
