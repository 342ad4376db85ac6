import { Logger } from '@nestjs/common';

/**
 * Work started by a request and finished after the response (202 + poll): tracked
 * so shutdown waits for it, and logged when it crashes instead of being lost.
 */
export class BackgroundTasks {
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly logger: Logger) {}

  start(what: string, id: string, fn: () => Promise<void>): void {
    const p: Promise<void> = fn()
      .catch((err: Error) =>
        this.logger.error({ [what]: id, error: err.message }, `${what} crashed`),
      )
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}
