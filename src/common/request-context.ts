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
