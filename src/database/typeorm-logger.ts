import { Logger } from '@nestjs/common';
import type { Logger as OrmLogger, QueryRunner } from 'typeorm';
import { nodeOfRunner } from './node-of.js';
import { normalizeStatement } from './sql-normalize.js';

const logger = new Logger('TypeORM');
const MAX_SQL = 300;

export interface SlowQuery {
  durationMs: number;
  /** Literal-free text (see normalizeStatement). */
  statement: string;
  /** Node name (host:port) the statement ran on, or `unknown`. */
  node: string;
}

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

  /** Set by SlowQueryMetrics: counts what is logged here (the logger is built before DI). */
  onSlowQuery?: (q: SlowQuery) => void;

  /**
   * Every statement TypeORM runs (the router's direct pools included: they are handed to
   * TypeORM) above DB_SLOW_QUERY_MS: one structured line, never a parameter value.
   */
  logQuerySlow(time: number, query: string, _parameters?: unknown[], runner?: QueryRunner): void {
    const slow: SlowQuery = {
      durationMs: time,
      statement: normalizeStatement(query),
      node: nodeOfRunner(runner) ?? 'unknown',
    };
    logger.warn(slow, 'slow query');
    this.onSlowQuery?.(slow);
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
