import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** Metric names are members here, never bare strings in feature code. */
export enum MetricName {
  HttpRequestDuration = 'http_request_duration_seconds',
  HttpFastPathResponses = 'http_fast_path_responses_total',
}

/** The one metrics registry of the process; every module adds its metrics here. */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** answers of the cached-read fast path (HTTP_FAST_PATH), by route template */
  readonly httpFastPath: Counter<'route'>;

  constructor() {
    this.registry.setDefaultLabels({ service: 'database-unit' });
    collectDefaultMetrics({ register: this.registry });
    this.httpDuration = new Histogram({
      name: MetricName.HttpRequestDuration,
      help: 'HTTP request duration by route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.httpFastPath = new Counter({
      name: MetricName.HttpFastPathResponses,
      help: 'Requests answered from the L1 cache before the NestJS pipeline (HTTP_FAST_PATH)',
      labelNames: ['route'],
      registers: [this.registry],
    });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
