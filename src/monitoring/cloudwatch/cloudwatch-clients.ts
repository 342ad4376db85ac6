import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { CloudWatchConfig } from '../../config/app-config.js';

/** A CloudWatch call never holds a socket longer than this (the publisher runs off the request path). */
const CONNECTION_TIMEOUT_MS = 3_000;
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * What both clients (and the publisher's worker thread, metric-sender.ts) share.
 * Credentials come from the SDK's default chain (env, profile, ECS task role, IMDS).
 */
export function clientOptions(config: CloudWatchConfig) {
  return {
    region: config.region,
    endpoint: config.endpoint,
    maxAttempts: config.maxAttempts,
    retryMode: 'standard',
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
    },
  };
}

export function createCloudWatchClient(config: CloudWatchConfig): CloudWatchClient {
  return new CloudWatchClient(clientOptions(config));
}

export function createCloudWatchLogsClient(config: CloudWatchConfig): CloudWatchLogsClient {
  return new CloudWatchLogsClient(clientOptions(config));
}
