import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram } from 'prom-client';
import { MetricsService } from '../monitoring/metrics.service.js';

export enum VectorMetric {
  SearchDuration = 'vector_search_duration_seconds',
  Recall = 'vector_search_recall',
  ExactFallbacks = 'vector_search_exact_fallbacks_total',
  Returned = 'vector_search_returned_rows',
  IndexSize = 'vector_index_size_bytes',
  IndexBuildSeconds = 'vector_index_last_build_seconds',
  Escalations = 'vector_search_escalations_total',
  WitnessRows = 'vector_search_witness_rows',
}

/** Vector search metrics, in the process's one registry. */
@Injectable()
export class SearchMetrics {
  readonly duration: Histogram<'plan' | 'mode' | 'filtered'>;
  readonly recall: Histogram<'plan' | 'filtered'>;
  readonly exactFallbacks: Counter<'filtered'>;
  readonly returned: Histogram<'plan'>;
  readonly indexSize: Gauge;
  readonly indexBuildSeconds: Gauge;
  readonly escalations: Counter<'outcome' | 'filtered'>;
  readonly witnessRows: Gauge;

  constructor(metrics: MetricsService) {
    const registers = [metrics.registry];
    this.duration = new Histogram({
      name: VectorMetric.SearchDuration,
      help: 'Vector search latency (database part), by plan and query mode',
      labelNames: ['plan', 'mode', 'filtered'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
      registers,
    });
    this.recall = new Histogram({
      name: VectorMetric.Recall,
      help: 'Recall of sampled searches against exact search (1 = same results)',
      labelNames: ['plan', 'filtered'],
      buckets: [0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1],
      registers,
    });
    this.exactFallbacks = new Counter({
      name: VectorMetric.ExactFallbacks,
      help: 'HNSW searches that ended short of their limit and were answered by an exact scan',
      labelNames: ['filtered'],
      registers,
    });
    this.returned = new Histogram({
      name: VectorMetric.Returned,
      help: 'Rows returned to the caller',
      labelNames: ['plan'],
      buckets: [0, 1, 5, 10, 20, 30, 40, 50],
      registers,
    });
    this.indexSize = new Gauge({
      name: VectorMetric.IndexSize,
      help: 'Size of the HNSW index on recipe embeddings',
      registers,
    });
    this.indexBuildSeconds = new Gauge({
      name: VectorMetric.IndexBuildSeconds,
      help: 'Duration of the last HNSW index (re)build run by this instance',
      registers,
    });
    this.escalations = new Counter({
      name: VectorMetric.Escalations,
      help: 'HNSW answers a sampled row proved incomplete, by what answered instead (wider-hnsw, exact, repaired)',
      labelNames: ['outcome', 'filtered'],
      registers,
    });
    this.witnessRows = new Gauge({
      name: VectorMetric.WitnessRows,
      help: 'Sampled rows held to check HNSW answers (VECTOR_WITNESS_ROWS)',
      registers,
    });
  }
}
