import { Writable } from 'node:stream';
import pino from 'pino';
import { PinoLoggerService } from './logger.js';

function capture(level: string): { logger: PinoLoggerService; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { logger: new PinoLoggerService(pino({ level }, sink)), lines };
}

describe('PinoLoggerService', () => {
  it('writes fields and the message of an enabled level', () => {
    const { logger, lines } = capture('info');
    logger.log({ requestId: 'r1', status: 200 }, 'request completed');
    logger.warn('pool is small', 'Pools');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 30,
        requestId: 'r1',
        status: 200,
        context: 'request completed',
      }),
      expect.objectContaining({ level: 40, msg: 'pool is small', context: 'Pools' }),
    ]);
  });

  it('does not read the fields of a call below the level', () => {
    const { logger, lines } = capture('warn');
    const fields = {
      get requestId(): string {
        throw new Error('a disabled level must not build its line');
      },
    };
    expect(() => logger.log(fields, 'request completed')).not.toThrow();
    expect(() => logger.debug(fields)).not.toThrow();
    logger.error('boom');
    expect(lines).toEqual([expect.objectContaining({ level: 50, msg: 'boom' })]);
  });
});
