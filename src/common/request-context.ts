import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * `strong`: the writer serves every read; `eventual`: replicas may serve reads even when
 * `DB_READ_DEFAULT=primary`; `default`: as `DB_READ_DEFAULT` says.
 */
export type Consistency = 'default' | 'strong' | 'eventual';

export const CONSISTENCY_HEADER_VALUES = ['strong', 'eventual'] as const;

export interface RequestContext {
  requestId: string;
  /** `x-consistency`: `strong` → every read of this request is served by the writer. */
  consistency: Consistency;
  /** API key id of the caller, for logs and rate limits (never the secret). */
  keyId?: string;
  /** Which node served the last read/write of this request (diagnostics). */
  servedBy?: { role: 'primary' | 'replica'; node: string };
  /** Reads of this request only use nodes that replayed this LSN (`x-write-lsn`, or its own writes). */
  minLsn?: string;
  /** The writer's LSN after this request's last write: answered as `x-write-lsn`. */
  writeLsn?: string;
  /** The request's Idempotency-Key: its first write marks the key committed in the same transaction. */
  idempotency?: { apiKeyId: string; key: string };
  /**
   * Milliseconds spent per stage (`HTTP_SERVER_TIMING`), answered as a `Server-Timing`
   * header; absent when not measured.
   */
  timings?: ServerTimings;
}

/** Stage durations of one request, and when its handling started (performance.now()). */
export interface ServerTimings {
  startedAt: number;
  stages: Record<string, number>;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** `Server-Timing` header value: every stage, then `total` (handling so far), in ms. */
export function serverTimingHeader(t: ServerTimings, now = performance.now()): string {
  const parts = Object.entries(t.stages).map(([name, ms]) => `${name};dur=${ms.toFixed(3)}`);
  parts.push(`total;dur=${(now - t.startedAt).toFixed(3)}`);
  return parts.join(', ');
}

export const RequestContextStore = {
  run<T>(ctx: RequestContext, fn: () => T): T {
    return storage.run(ctx, fn);
  },
  get(): RequestContext | undefined {
    return storage.getStore();
  },
  /** Adds `ms` to the request's `stage` when its stages are measured (HTTP_SERVER_TIMING). */
  addTiming(stage: string, ms: number, ctx = storage.getStore()): void {
    const t = ctx?.timings;
    if (t) {
      t.stages[stage] = (t.stages[stage] ?? 0) + ms;
    }
  },
  /** Runs `fn`, counting its time to `stage` when the request's stages are measured. */
  async timed<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    const ctx = storage.getStore();
    if (!ctx?.timings) {
      return fn();
    }
    const started = performance.now();
    try {
      return await fn();
    } finally {
      RequestContextStore.addTiming(stage, performance.now() - started, ctx);
    }
  },
  /** Runs `fn` with the current context (or `name`'s own) whose reads use nodes that replayed `minLsn`. */
  runAt<T>(minLsn: string | null, name: string, fn: () => T): T {
    const ctx = storage.getStore() ?? { requestId: name, consistency: 'default' as const };
    return storage.run({ ...ctx, minLsn: minLsn ?? undefined }, fn);
  },
};
