import { Logger } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';

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

  /**
   * Every `ms`, runs `run` on what `list` returns: requests left queued or running by
   * an instance that crashed. Registered with the scheduler (stopped on shutdown).
   */
  sweepEvery(
    scheduler: SchedulerRegistry,
    name: string,
    ms: number,
    list: () => Promise<string[]>,
    run: (id: string) => Promise<void>,
  ): void {
    const sweep = async (): Promise<void> => {
      try {
        for (const id of await list()) {
          await run(id);
        }
      } catch (err) {
        this.logger.warn(
          { sweep: name, error: (err as Error).message },
          'sweep failed; will retry',
        );
      }
    };
    const timer = setInterval(() => void sweep(), ms);
    timer.unref();
    scheduler.addInterval(name, timer);
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }
}
