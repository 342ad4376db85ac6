import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { BOOT_TOPOLOGY } from './database.tokens.js';
import { probeAll } from './boot.js';
import type { BootTopology } from './boot.js';
import { NodeProbe, NodeRole } from './topology.js';

export interface NodeState {
  name: string;
  /** Role as of the last successful probe (a node keeps its last known role while down). */
  role: NodeRole;
  healthy: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastProbe: NodeProbe;
  lastCheckedAt: string;
  lastError?: string;
}

/**
 * Keeps the health of every configured node: checked every DB_HEALTH_INTERVAL_MS,
 * unhealthy after DB_UNHEALTHY_THRESHOLD failures, healthy again after
 * DB_HEALTHY_THRESHOLD successes. Errors seen on live traffic count at once.
 */
@Injectable()
export class TopologyService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(TopologyService.name);
  private readonly states = new Map<string, NodeState>();
  private timer?: NodeJS.Timeout;
  private refreshing?: Promise<void>;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(BOOT_TOPOLOGY) private readonly boot: BootTopology,
  ) {
    const now = new Date().toISOString();
    for (const probe of boot.probes) {
      this.states.set(probe.name, {
        name: probe.name,
        role: probe.role,
        healthy: probe.reachable,
        consecutiveFailures: probe.reachable ? 0 : 1,
        consecutiveSuccesses: probe.reachable ? 1 : 0,
        lastProbe: probe,
        lastCheckedAt: now,
        lastError: probe.error,
      });
    }
  }

  get writerName(): string {
    return this.boot.writer.name;
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      void this.refresh();
    }, this.config.database.health.intervalMs);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) {
      clearInterval(this.timer);
    }
  }

  /** One round of checks; concurrent callers share the round in flight. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const probes = await probeAll(this.config, this.config.database.health.timeoutMs);
    for (const probe of probes) {
      if (probe.reachable) {
        this.recordSuccess(probe);
      } else {
        this.recordFailure(probe.name, probe.error ?? 'unreachable', probe);
      }
    }
  }

  private recordSuccess(probe: NodeProbe): void {
    const s = this.mustGet(probe.name);
    s.consecutiveFailures = 0;
    s.consecutiveSuccesses += 1;
    s.lastProbe = probe;
    s.role = probe.role;
    s.lastCheckedAt = new Date().toISOString();
    s.lastError = undefined;
    if (!s.healthy && s.consecutiveSuccesses >= this.config.database.health.healthyThreshold) {
      s.healthy = true;
      this.logger.log({ node: s.name, role: s.role }, 'node healthy again');
    }
  }

  /**
   * A failed check. `immediate` (errors seen on live traffic such as connection
   * refused) marks the node unhealthy at once instead of after the threshold.
   */
  recordFailure(name: string, error: string, probe?: NodeProbe, immediate = false): void {
    const s = this.states.get(name);
    if (!s) {
      return;
    }
    s.consecutiveSuccesses = 0;
    s.consecutiveFailures += 1;
    s.lastError = error;
    s.lastCheckedAt = new Date().toISOString();
    if (probe) {
      s.lastProbe = probe;
    }
    if (
      s.healthy &&
      (immediate || s.consecutiveFailures >= this.config.database.health.unhealthyThreshold)
    ) {
      s.healthy = false;
      this.logger.warn(
        { node: name, role: s.role, failures: s.consecutiveFailures, error },
        'node unhealthy',
      );
    }
  }

  isHealthy(name: string): boolean {
    return this.states.get(name)?.healthy ?? false;
  }

  snapshot(): NodeState[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  private mustGet(name: string): NodeState {
    const s = this.states.get(name);
    if (!s) {
      throw new Error(`unknown node ${name}`);
    }
    return s;
  }
}
