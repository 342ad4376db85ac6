import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A stand-in for CloudWatch and CloudWatch Logs speaking what @aws-sdk/client-cloudwatch
 * 3.1164 and @aws-sdk/client-cloudwatch-logs really send: JSON RPC (`X-Amz-Target:
 * GraniteServiceVersion20100801.<Op>`, awsJson1_0 in query-compatible mode, bodies gzipped
 * above 10 KB; `Logs_20140328.<Op>`, awsJson1_1). Errors are answered the way those
 * protocols expect them (`__type` in the body; for CloudWatch also `x-amzn-query-error`).
 * SigV4 is not verified.
 */
export interface RecordedCall {
  service: 'cloudwatch' | 'logs';
  operation: string;
  /** The decoded JSON body. */
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  /** Bytes on the wire (compressed when gzipped). */
  wireBytes: number;
  /** Bytes of the JSON body once decoded. */
  jsonBytes: number;
  /** The answer's HTTP status (0: never answered). */
  status: number;
}

/** `hang`: the request is read and never answered (until close). */
export type Fault = 'throttle' | 'internal' | 'hang';

export interface FakeCloudWatch {
  url: string;
  calls: RecordedCall[];
  dashboards: Map<string, string>;
  alarms: Map<string, Record<string, unknown>>;
  metricFilters: Map<string, Record<string, unknown>>;
  logGroups: Map<string, { retentionInDays?: number }>;
  /** The next calls (any operation) are answered with these faults, in order. */
  failNext(...faults: Fault[]): void;
  /**
   * GetMetricData's datapoints: the value of `metric` of `dimension` (a DBInstanceIdentifier)
   * for the minute starting at `at`, or undefined for none (a gap). Unset: no datapoints.
   */
  metricValue?: (metric: string, dimension: string, at: Date) => number | undefined;
  /** Successful PutMetricData bodies' MetricData, flattened. */
  acceptedDatums(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

const CW_TARGET = 'GraniteServiceVersion20100801.';
const LOGS_TARGET = 'Logs_20140328.';

class Fail extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly queryCode?: string,
  ) {
    super(message);
  }
}

export async function startFakeCloudWatch(): Promise<FakeCloudWatch> {
  const calls: RecordedCall[] = [];
  const faults: Fault[] = [];
  const dashboards = new Map<string, string>();
  const alarms = new Map<string, Record<string, unknown>>();
  const metricFilters = new Map<string, Record<string, unknown>>();
  const logGroups = new Map<string, { retentionInDays?: number }>();

  function cloudwatch(op: string, body: Record<string, unknown>): Record<string, unknown> {
    switch (op) {
      case 'PutMetricData':
        if (!Array.isArray(body.MetricData) || body.MetricData.length > 1000) {
          throw new Fail(
            400,
            'InvalidParameterValue',
            'MetricData: 1 to 1000 items',
            'InvalidParameterValue;Sender',
          );
        }
        return {};
      case 'GetMetricData': {
        // awsJson: times are epoch seconds; one-minute periods from StartTime to EndTime
        const start = Math.ceil(Number(body.StartTime) / 60) * 60;
        const end = Number(body.EndTime);
        const queries = body.MetricDataQueries as Array<{
          Id: string;
          MetricStat: {
            Metric: { MetricName: string; Dimensions: Array<{ Name: string; Value: string }> };
            Period: number;
          };
        }>;
        return {
          MetricDataResults: queries.map((q) => {
            const timestamps: number[] = [];
            const values: number[] = [];
            for (let t = start; t + q.MetricStat.Period <= end; t += q.MetricStat.Period) {
              const v = fake.metricValue?.(
                q.MetricStat.Metric.MetricName,
                q.MetricStat.Metric.Dimensions[0]?.Value ?? '',
                new Date(t * 1000),
              );
              if (v !== undefined) {
                timestamps.push(t);
                values.push(v);
              }
            }
            return {
              Id: q.Id,
              Label: q.Id,
              Timestamps: timestamps,
              Values: values,
              StatusCode: 'Complete',
            };
          }),
          Messages: [],
        };
      }
      case 'PutDashboard':
        JSON.parse(String(body.DashboardBody));
        dashboards.set(String(body.DashboardName), String(body.DashboardBody));
        return { DashboardValidationMessages: [] };
      case 'PutMetricAlarm':
        alarms.set(String(body.AlarmName), body);
        return {};
      default:
        throw new Fail(400, 'InvalidAction', `unsupported ${op}`, 'InvalidAction;Sender');
    }
  }

  function logs(op: string, body: Record<string, unknown>): Record<string, unknown> {
    const group = String(body.logGroupName);
    switch (op) {
      case 'CreateLogGroup':
        if (logGroups.has(group)) {
          throw new Fail(
            400,
            'ResourceAlreadyExistsException',
            'The specified log group already exists',
          );
        }
        logGroups.set(group, {});
        return {};
      case 'PutRetentionPolicy':
      case 'PutMetricFilter': {
        const entry = logGroups.get(group);
        if (!entry) {
          throw new Fail(
            400,
            'ResourceNotFoundException',
            'The specified log group does not exist.',
          );
        }
        if (op === 'PutRetentionPolicy') {
          entry.retentionInDays = Number(body.retentionInDays);
        } else {
          metricFilters.set(`${group}:${String(body.filterName)}`, body);
        }
        return {};
      }
      default:
        throw new Fail(400, 'InvalidOperationException', `unsupported ${op}`);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      chunks.push(chunk as Buffer);
    }
    const wire = Buffer.concat(chunks);
    const raw = req.headers['content-encoding'] === 'gzip' ? gunzipSync(wire) : wire;
    const target = String(req.headers['x-amz-target'] ?? '');
    const service = target.startsWith(LOGS_TARGET) ? 'logs' : 'cloudwatch';
    const operation = target.slice(service === 'logs' ? LOGS_TARGET.length : CW_TARGET.length);
    const contentType =
      service === 'logs' ? 'application/x-amz-json-1.1' : 'application/x-amz-json-1.0';
    const body =
      raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {};
    const call: RecordedCall = {
      service,
      operation,
      body,
      headers: req.headers,
      wireBytes: wire.length,
      jsonBytes: raw.length,
      status: 200,
    };
    calls.push(call);
    try {
      const fault = faults.shift();
      if (fault === 'hang') {
        call.status = 0; // never answered
        return;
      }
      if (fault === 'throttle') {
        throw new Fail(400, 'Throttling', 'Rate exceeded', 'Throttling;Sender');
      }
      if (fault === 'internal') {
        throw new Fail(
          500,
          'InternalServiceError',
          'internal failure',
          'InternalServiceError;Receiver',
        );
      }
      const out = service === 'logs' ? logs(operation, body) : cloudwatch(operation, body);
      res.writeHead(200, {
        'content-type': contentType,
        'x-amzn-requestid': `req-${calls.length}`,
      });
      res.end(JSON.stringify(out));
    } catch (err) {
      const fail =
        err instanceof Fail ? err : new Fail(500, 'InternalFailure', (err as Error).message);
      call.status = fail.status;
      const headers: Record<string, string> = {
        'content-type': contentType,
        'x-amzn-requestid': `req-${calls.length}`,
      };
      if (service === 'cloudwatch' && fail.queryCode) {
        headers['x-amzn-query-error'] = fail.queryCode;
      }
      res.writeHead(fail.status, headers);
      res.end(JSON.stringify({ __type: fail.type, message: fail.message }));
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      res.writeHead(500);
      res.end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const fake: FakeCloudWatch = {
    url: `http://127.0.0.1:${port}`,
    calls,
    dashboards,
    alarms,
    metricFilters,
    logGroups,
    failNext: (...f) => faults.push(...f),
    acceptedDatums: () =>
      calls
        .filter((c) => c.operation === 'PutMetricData' && c.status === 200)
        .flatMap((c) => c.body.MetricData as Array<Record<string, unknown>>),
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
  return fake;
}
