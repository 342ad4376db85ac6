import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { SearchMetrics } from './search.metrics.js';
import { SearchRepository } from './search.repository.js';
import { WitnessSet } from './witness-set.js';

const STALE_REFRESH_MS = 5_000;

/**
 * Keeps this instance's WitnessSet: `VECTOR_WITNESS_ROWS` recipes sampled from a read
 * node at boot and every `VECTOR_WITNESS_REFRESH_S`, so rows of a population that
 * arrived since (through any instance) are among them within one interval; and
 * `VECTOR_WITNESS_STRATUM_ROWS` more for each of up to `VECTOR_WITNESS_STRATA` frequent
 * filter values (a cuisine, a tag, a dietary label) the table-wide sample holds few of.
 */
@Injectable()
export class WitnessService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(WitnessService.name);
  readonly set = new WitnessSet();
  private timer?: NodeJS.Timeout;
  private refreshing: Promise<void> | null = null;
  private sampledAt = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly searches: SearchRepository,
    private readonly metrics: SearchMetrics,
  ) {}

  onModuleInit(): void {
    if (this.config.vector.witnessRows <= 0) {
      return;
    }
    // Stale witnesses (rows deleted or changed since the sample, e.g. a mass delete)
    // would each cost a search an exact scan until the next refresh: sample again now,
    // at most every STALE_REFRESH_MS.
    this.set.onStale = () => {
      if (Date.now() - this.sampledAt >= STALE_REFRESH_MS) {
        void this.refresh();
      }
    };
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.vector.witnessRefreshMs);
    this.timer.unref();
  }

  /** Samples anew; one refresh at a time, a failure keeps the previous sample. */
  refresh(): Promise<void> {
    this.refreshing ??= this.sample().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async sample(): Promise<void> {
    const started = performance.now();
    try {
      const v = this.config.vector;
      const sample = await this.searches.sampleWitnesses(v.witnessRows, {
        count: v.witnessStrata,
        rows: v.witnessStratumRows,
        exactMaxRows: v.exactMaxRows,
      });
      this.set.replace(sample.rows, sample.strata);
      this.sampledAt = Date.now();
      this.metrics.witnessRows.set(this.set.size);
      this.logger.debug(
        {
          rows: sample.rows.length,
          strata: [...sample.strata].map(([key, rows]) => `${key} (${rows.length})`),
          ms: Math.round(performance.now() - started),
        },
        'search witnesses sampled',
      );
    } catch (err) {
      this.logger.warn(
        { error: (err as Error).message, kept: this.set.size },
        'sampling search witnesses failed; keeping the previous sample',
      );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) {
      clearInterval(this.timer);
    }
    await this.refreshing;
  }
}
