/**
 * The `--monitoring-ab` CloudWatch endpoint as a process of its own (forked by
 * monitoring-ab.ts), so that answering PutMetricData (gunzip, JSON parse) never takes a
 * turn on the load generator's event loop. (Measured: it was not what cost the "on" side
 * its ~10 %; that was the SDK on the service's main thread, see metric-sender.ts.)
 *
 * IPC: sends `{ url }` once listening; answers `'counts'` with `{ counts }`; exits on
 * `'close'` (or when the parent goes away).
 */
import { startFakeCloudWatch } from '../../test/support/fake-cloudwatch.js';

export interface EndpointCounts {
  /** PutMetricData calls answered 200 and the datums they carried */
  puts: number;
  datums: number;
  wireBytes: number;
  /** any other operation */
  others: number;
}

const fake = await startFakeCloudWatch();
const totals: EndpointCounts = { puts: 0, datums: 0, wireBytes: 0, others: 0 };

/** Folds the recorded calls into the totals and forgets their bodies (bounded memory). */
function drain(): EndpointCounts {
  for (const c of fake.calls.splice(0)) {
    if (c.operation !== 'PutMetricData') {
      totals.others++;
    } else if (c.status === 200) {
      totals.puts++;
      totals.datums += (c.body.MetricData as unknown[]).length;
      totals.wireBytes += c.wireBytes;
    }
  }
  return { ...totals };
}

process.on('message', (m) => {
  if (m === 'counts') {
    process.send?.({ counts: drain() });
  } else if (m === 'close') {
    void fake.close().finally(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ url: fake.url });
