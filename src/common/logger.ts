import { LoggerService, LogLevel } from '@nestjs/common';
import pino, { Logger as PinoLogger } from 'pino';
import { RequestContextStore } from './request-context.js';

const REDACT = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'token',
  '*.token',
  'pass',
  '*.pass',
  'webhookUrl',
  '*.webhookUrl',
];

export function createPino(level: string): PinoLogger {
  return pino({
    level,
    base: { service: 'database-unit' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => {
      const ctx = RequestContextStore.get();
      return ctx ? { requestId: ctx.requestId } : {};
    },
  });
}

/** Nest's LoggerService over pino: structured JSON, request id on every line. */
export class PinoLoggerService implements LoggerService {
  constructor(private readonly pino: PinoLogger) {}

  private write(
    level: 'info' | 'error' | 'warn' | 'debug' | 'trace' | 'fatal',
    message: unknown,
    params: unknown[],
  ): void {
    // below the level (e.g. every request's "request completed" at LOG_LEVEL=warn): build
    // nothing; the merged objects below cost each request a few µs and new hidden classes
    if (!this.pino.isLevelEnabled(level)) {
      return;
    }
    let context: string | undefined;
    let extra: unknown;
    const rest = [...params];
    if (rest.length > 0 && typeof rest[rest.length - 1] === 'string') {
      context = rest.pop() as string;
    }
    if (rest.length > 0) {
      extra = rest[0];
    }
    const fields: Record<string, unknown> = {};
    if (context) {
      fields.context = context;
    }
    let msg: string | undefined;
    if (typeof extra === 'string') {
      // Nest style: error(message, stack); ours: log({ fields }, 'message').
      if (message && typeof message === 'object' && !(message instanceof Error)) {
        msg = extra;
      } else if (level === 'error') {
        fields.stack = extra;
      }
    } else if (extra instanceof Error) {
      fields.err = extra;
    } else if (extra && typeof extra === 'object') {
      Object.assign(fields, extra);
    }
    if (message instanceof Error) {
      this.pino[level]({ ...fields, err: message }, message.message);
    } else if (message && typeof message === 'object') {
      this.pino[level]({ ...fields, ...message }, msg);
    } else {
      this.pino[level](fields, String(message));
    }
  }

  log(message: unknown, ...params: unknown[]): void {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.write('fatal', message, params);
  }
  setLogLevels(_levels: LogLevel[]): void {
    // Level is owned by LOG_LEVEL; Nest's own level list is not used.
  }
}
