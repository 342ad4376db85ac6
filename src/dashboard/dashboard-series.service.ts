import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { PoolControllerService } from '../database/pool-controller.service.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import {
  ActiveAlert,
  activeAlerts,
  BackupStatus,
  backupStatus,
  CHARTS,
  Chart,
  copySnapshot,
  point,
  Point,
  RegistrySnapshot,
} from './series.js';

export interface ChartView {
  id: Chart;
  title: string;
  unit: string;
  /** Line names, each with one value per timestamp (null: nothing observed then). */
  lines: Array<{ name: string; values: Array<number | null> }>;
}

export interface DashboardView {
  sampleSeconds: number;
  /** Unix milliseconds of each point, oldest first. */
  timestamps: number[];
  charts: ChartView[];
  alerts: ActiveAlert[];
  backups: BackupStatus;
  generatedAt: string;
}

/**
 * The page's time series: every DASHBOARD_SAMPLE_SECONDS one point per chart from the
 * process's metrics registry (rates and quantiles over the interval), kept in memory for
 * the last DASHBOARD_HISTORY_POINTS samples. Per instance: the page shows the instance
 * that served it.
 */
@Injectable()
export class DashboardSeriesService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(DashboardSeriesService.name);
  private timer: NodeJS.Timeout | null = null;
  private previous: { at: number; snapshot: RegistrySnapshot } | null = null;
  private readonly points: Array<{ at: number; point: Point }> = [];
  private latest: RegistrySnapshot = [];
  private failures = 0;

  constructor(
    private readonly metrics: MetricsService,
    private readonly pools: PoolControllerService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    const seconds = this.config.dashboard.sampleSeconds;
    if (seconds <= 0) {
      return;
    }
    this.timer = setInterval(() => void this.sample(), seconds * 1000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Takes one sample now (the timer's tick; tests call it too). Never throws. */
  async sample(): Promise<void> {
    try {
      const snapshot = copySnapshot(await this.metrics.registry.getMetricsAsJSON());
      const at = Date.now();
      if (this.previous && at > this.previous.at) {
        const seconds = (at - this.previous.at) / 1000;
        const pools = Object.fromEntries(
          this.pools.view().pools.map((p) => [p.label, p.utilization]),
        );
        this.points.push({
          at,
          point: point(this.previous.snapshot, snapshot, seconds, pools),
        });
        const excess = this.points.length - this.config.dashboard.historyPoints;
        if (excess > 0) {
          this.points.splice(0, excess);
        }
      }
      this.previous = { at, snapshot };
      this.latest = snapshot;
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      // once per run of failures, not every tick
      if (this.failures === 1) {
        this.logger.warn({ error: (err as Error).message }, 'dashboard sample failed');
      }
    }
  }

  view(): DashboardView {
    const charts = CHARTS.map((c): ChartView => {
      const names = new Set<string>();
      for (const p of this.points) {
        Object.keys(p.point[c.id]).forEach((n) => names.add(n));
      }
      return {
        ...c,
        lines: [...names].sort().map((name) => ({
          name,
          values: this.points.map((p) => p.point[c.id][name] ?? null),
        })),
      };
    });
    return {
      sampleSeconds: this.config.dashboard.sampleSeconds,
      timestamps: this.points.map((p) => p.at),
      charts,
      alerts: activeAlerts(this.latest),
      backups: backupStatus(this.latest),
      generatedAt: new Date().toISOString(),
    };
  }
}
