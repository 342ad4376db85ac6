import { Logger } from '@nestjs/common';
import type { Logger as OrmLogger } from 'typeorm';

const logger = new Logger('TypeORM');
const MAX_SQL = 300;

/**
 * TypeORM's own logger prints failed queries with their bound parameters —
 * personal data, ciphertext, tokens. This one logs the statement (shortened) and
 * the error, and only the number of parameters.
 */
export class SafeTypeOrmLogger implements OrmLogger {
  logQuery(): void {
    // Successful queries are not logged (volume, and parameters).
  }

  logQueryError(error: string | Error, query: string, parameters?: unknown[] | object): void {
    // Expected outcomes (unique violations, serialization failures) are handled by callers.
    logger.debug(
      {
        error: typeof error === 'string' ? error : error.message,
        code: (error as { code?: string }).code,
        sql: shorten(query),
        parameters: Array.isArray(parameters) ? parameters.length : 0,
      },
      'query failed',
    );
  }

  logQuerySlow(time: number, query: string): void {
    logger.warn({ ms: time, sql: shorten(query) }, 'slow query');
  }

  logSchemaBuild(): void {
    // synchronize is off; nothing to log.
  }

  logMigration(message: string): void {
    logger.log(message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') {
      logger.warn(String(message));
    } else {
      logger.log(String(message));
    }
  }
}

function shorten(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_SQL ? `${flat.slice(0, MAX_SQL)}…` : flat;
}
