import { threadId } from 'node:worker_threads';
import { useTestAwsCredentials } from '../../../test/support/aws-credentials.js';
import { testCloudWatchConfig } from '../../../test/support/cloudwatch-config.js';
import { type FakeCloudWatch, startFakeCloudWatch } from '../../../test/support/fake-cloudwatch.js';
import { isRetryable } from './cloudwatch-publisher.service.js';
import { WorkerMetricSender } from './metric-sender.js';

const datum = (value: number) => ({ MetricName: 'dbu_test', Value: value, Unit: 'Count' as const });

describe(WorkerMetricSender.name, () => {
  let fake: FakeCloudWatch;
  let sender: WorkerMetricSender;
  useTestAwsCredentials();

  beforeEach(async () => {
    fake = await startFakeCloudWatch();
    sender = new WorkerMetricSender(testCloudWatchConfig(fake.url, { maxAttempts: 1 }));
  });

  afterEach(async () => {
    await sender.destroy();
    await fake.close();
  });

  it('sends PutMetricData from a worker thread, over the SDK wire protocol', async () => {
    await sender.send('DatabaseUnitTest', [datum(1), datum(2)], new AbortController().signal);
    expect(fake.acceptedDatums()).toEqual([
      expect.objectContaining({ MetricName: 'dbu_test', Value: 1, Unit: 'Count' }),
      expect.objectContaining({ MetricName: 'dbu_test', Value: 2, Unit: 'Count' }),
    ]);
    expect(fake.calls[0].headers['x-amz-target']).toBe(
      'GraniteServiceVersion20100801.PutMetricData',
    );
    // the SDK did not run here
    const worker = (sender as unknown as { worker: { threadId: number } | null }).worker;
    expect(worker?.threadId).toBeGreaterThan(threadId);
  });

  it("passes CloudWatch's errors back shaped like the SDK's: throttling retryable, a 4xx not", async () => {
    fake.failNext('throttle');
    const throttled = await sender
      .send('DatabaseUnitTest', [datum(1)], new AbortController().signal)
      .then(() => null)
      .catch((err: unknown) => err);
    expect(throttled).toBeInstanceOf(Error);
    expect(isRetryable(throttled)).toBe(true);

    const tooMany = Array.from({ length: 1_001 }, (_, i) => datum(i));
    const rejected = await sender
      .send('DatabaseUnitTest', tooMany, new AbortController().signal)
      .then(() => null)
      .catch((err: unknown) => err);
    expect((rejected as Error).name).toBe('InvalidParameterValueException');
    expect(isRetryable(rejected)).toBe(false);
  });

  it('an abort ends a hanging call; a dead thread fails its calls as retryable and is replaced', async () => {
    // the fake has the call (and hangs on it) before the test acts: a fixed sleep was not
    // enough on a busy machine (the thread's start and the SDK's import took longer), the
    // armed fault then caught the last call
    const received = async (n: number): Promise<void> => {
      while (fake.calls.length < n) {
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    fake.failNext('hang');
    const abort = new AbortController();
    const hanging = sender
      .send('DatabaseUnitTest', [datum(1)], abort.signal)
      .catch((e: unknown) => e);
    await received(1);
    abort.abort();
    const aborted = await hanging;
    expect(aborted).toBeInstanceOf(Error);
    expect(isRetryable(aborted)).toBe(true);

    fake.failNext('hang');
    const lost = sender
      .send('DatabaseUnitTest', [datum(2)], new AbortController().signal)
      .catch((e: unknown) => e);
    await received(2);
    const worker = (sender as unknown as { worker: { terminate(): Promise<number> } }).worker;
    await worker.terminate();
    const err = (await lost) as Error;
    expect(err.message).toMatch(/sender thread exited/);
    expect(isRetryable(err)).toBe(true);

    await sender.send('DatabaseUnitTest', [datum(3)], new AbortController().signal);
    expect(fake.acceptedDatums().map((d) => d.Value)).toEqual([3]);
  });
});
