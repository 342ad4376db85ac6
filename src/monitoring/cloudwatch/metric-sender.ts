import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { MetricDatum } from '@aws-sdk/client-cloudwatch';
import type { CloudWatchConfig } from '../../config/app-config.js';
import { clientOptions } from './cloudwatch-clients.js';

/** Sends one PutMetricData call; a failure is thrown shaped like the SDK's errors. */
export interface MetricSender {
  send(namespace: string, datums: MetricDatum[], signal: AbortSignal): Promise<void>;
  destroy(): Promise<void>;
}

/** What crosses the thread boundary of a failed call: enough for isRetryable and the logs. */
interface WireError {
  name: string;
  message: string;
  retryable: boolean;
  status?: number;
}

type Reply = { id: number; ok: true } | { id: number; ok: false; error: WireError };

/**
 * The worker's code (evaluated, CommonJS): one CloudWatchClient, one call per message,
 * `{ abort: id }` aborts a call in flight. The SDK module is resolved by the main thread
 * (workerData.sdk) so that it does not depend on the working directory.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { CloudWatchClient, PutMetricDataCommand } = require(workerData.sdk);
const client = new CloudWatchClient(workerData.options);
const inFlight = new Map();
parentPort.on('message', async (m) => {
  if (m.abort !== undefined) {
    inFlight.get(m.abort)?.abort();
    return;
  }
  const controller = new AbortController();
  inFlight.set(m.id, controller);
  try {
    await client.send(
      new PutMetricDataCommand({ Namespace: m.namespace, MetricData: m.datums }),
      { abortSignal: controller.signal },
    );
    parentPort.postMessage({ id: m.id, ok: true });
  } catch (err) {
    parentPort.postMessage({
      id: m.id,
      ok: false,
      error: {
        name: String(err && err.name || 'Error'),
        message: String(err && err.message || err),
        retryable: Boolean(err && err.$retryable),
        status: err && err.$metadata ? err.$metadata.httpStatusCode : undefined,
      },
    });
  } finally {
    inFlight.delete(m.id);
  }
});
`;

/**
 * The SDK in a worker thread of its own: the publisher's HTTP client, request signing and
 * compression run in another V8 isolate, so they neither share the request path's event
 * loop nor its JIT feedback and heap. (Measured: with the SDK on the main thread the cached
 * GETs of `bench:cache --monitoring-ab` lost about 10 % of their throughput, though the
 * publisher's own CPU was 0.3 % of a core; see bench/README.md.) The worker starts on the
 * first call and again after it dies (its calls in flight fail as retryable).
 */
export class WorkerMetricSender implements MetricSender {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(): void; reject(err: Error): void }>();

  constructor(private readonly config: CloudWatchConfig) {}

  send(namespace: string, datums: MetricDatum[], signal: AbortSignal): Promise<void> {
    if (signal.aborted) {
      return Promise.reject(
        sdkShapedError({ name: 'AbortError', message: 'aborted', retryable: false }),
      );
    }
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => worker.postMessage({ abort: id });
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      worker.postMessage({ id, namespace, datums });
    });
  }

  async destroy(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    this.failAll('the CloudWatch sender stopped');
    await worker?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) {
      return this.worker;
    }
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // this module's view of the environment (the SDK's credential chain reads it); the
      // default would be the process's own, which a test sandbox does not write through to
      env: { ...process.env },
      workerData: {
        sdk: createRequire(import.meta.url).resolve('@aws-sdk/client-cloudwatch'),
        options: clientOptions(this.config),
      },
    });
    // The publisher's timer keeps the process alive when it should, not this thread.
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.ok) {
        waiter?.resolve();
      } else {
        waiter?.reject(sdkShapedError(reply.error));
      }
    });
    const gone = (why: string) => {
      if (this.worker === worker) {
        this.worker = null;
        this.failAll(why);
      }
    };
    worker.on('error', (err) => gone(`the CloudWatch sender thread failed: ${err.message}`));
    worker.on('exit', (code) => gone(`the CloudWatch sender thread exited (${code})`));
    this.worker = worker;
    return worker;
  }

  private failAll(why: string): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiters) {
      // no answer from CloudWatch: retryable, like a connection that broke
      w.reject(sdkShapedError({ name: 'SenderUnavailable', message: why, retryable: true }));
    }
  }
}

/** An Error with the fields isRetryable and the logs read off the SDK's own errors. */
function sdkShapedError(e: WireError): Error {
  const err = new Error(e.message) as Error & {
    $retryable?: object;
    $metadata?: { httpStatusCode?: number };
  };
  err.name = e.name;
  if (e.retryable) {
    err.$retryable = {};
  }
  err.$metadata = { httpStatusCode: e.status };
  return err;
}
