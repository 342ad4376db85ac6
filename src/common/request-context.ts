import { AsyncLocalStorage } from 'node:async_hooks';

export type Consistency = 'default' | 'strong';

export interface RequestContext {
  requestId: string;
  /** `strong`: every read of this request is served by the writer. */
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
};
