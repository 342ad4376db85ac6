import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until `accept` holds or `ms` passed, and returns the last value: the
 * caller's assertion on it then says what was not reached.
 */
export async function until<T>(
  probe: () => Promise<T>,
  accept: (v: T) => boolean,
  ms = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  let value = await probe();
  while (!accept(value) && Date.now() < deadline) {
    await sleep(everyMs);
    value = await probe();
  }
  return value;
}
