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
}

const storage = new AsyncLocalStorage<RequestContext>();

export const RequestContextStore = {
  run<T>(ctx: RequestContext, fn: () => T): T {
    return storage.run(ctx, fn);
  },
  get(): RequestContext | undefined {
    return storage.getStore();
  },
  /** Runs `fn` with the current context (or `name`'s own) whose reads use nodes that replayed `minLsn`. */
  runAt<T>(minLsn: string | null, name: string, fn: () => T): T {
    const ctx = storage.getStore() ?? { requestId: name, consistency: 'default' as const };
    return storage.run({ ...ctx, minLsn: minLsn ?? undefined }, fn);
  },
};
