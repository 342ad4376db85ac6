import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { NotFoundError } from '../common/errors.js';
import { ROUTE_LABELS } from '../database/database.tokens.js';
import { JobRunRow, JobRunsRepository } from '../database/job-runs.repository.js';
import { FailoverService } from '../database/failover.service.js';
import type { FailoverRecord } from '../database/failover.service.js';
import { ReadRouterService } from '../database/read-router.service.js';
import type { RouteLabels } from '../database/read-router.service.js';
import { NodeState, TopologyService } from '../database/topology.service.js';
import type { ProbeResponseDto } from './dto/probe.dto.js';
import { ProbeRow, ProbesRepository } from './probes.repository.js';

export interface TopologyView {
  writer: string;
  failover: {
    mode: string;
    inProgress: boolean;
    writesBlocked: string | null;
    recent: FailoverRecord[];
  };
  routing: { writes: string; reads: string[]; readDefault: string; viaPgBouncer: boolean };
  nodes: Array<
    Pick<
      NodeState,
      'name' | 'role' | 'healthy' | 'consecutiveFailures' | 'lastCheckedAt' | 'lastError'
    > & {
      fenced: boolean;
      timeline: number | null;
      lsn: string | null;
      replayLagSeconds: number | null;
      lagBytes: number | null;
      /** null when the node may serve reads; else why not. */
      readExclusion: string | null;
    }
  >;
}

@Injectable()
export class OpsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(ROUTE_LABELS) private readonly labels: RouteLabels,
    private readonly topologyService: TopologyService,
    private readonly probes: ProbesRepository,
    private readonly runs: JobRunsRepository,
    private readonly failovers: FailoverService,
    private readonly router: ReadRouterService,
  ) {}

  async topology(): Promise<TopologyView> {
    await this.topologyService.refresh();
    return {
      writer: this.topologyService.writerName,
      failover: {
        mode: this.failovers.mode,
        inProgress: this.failovers.inProgress,
        writesBlocked: this.router.writesBlocked,
        recent: this.failovers.recent(),
      },
      routing: {
        writes: this.labels.writeLabel,
        reads: this.labels.readLabels,
        readDefault: this.config.database.readDefault,
        viaPgBouncer: this.config.database.routeViaPgBouncer,
      },
      nodes: this.topologyService.snapshot().map((s) => ({
        name: s.name,
        role: s.role,
        healthy: s.healthy,
        consecutiveFailures: s.consecutiveFailures,
        lastCheckedAt: s.lastCheckedAt,
        lastError: s.lastError,
        fenced: s.fenced,
        discovered: s.discovered,
        timeline: s.lastProbe.timeline,
        lsn: s.lastProbe.lsn,
        replayLagSeconds: s.lastProbe.replayLagSeconds,
        lagBytes: s.lagBytes,
        readExclusion: this.topologyService.exclusion(s.name),
      })),
    };
  }

  async job(id: string): Promise<JobRunRow> {
    const run = await this.runs.getById(id);
    if (!run) {
      throw new NotFoundError('job run', id);
    }
    return run;
  }

  async createProbe(note: string): Promise<ProbeResponseDto> {
    return toDto(await this.probes.create(note));
  }

  async getProbe(id: string): Promise<ProbeResponseDto> {
    const row = await this.probes.getById(id);
    if (!row) {
      throw new NotFoundError('probe', id);
    }
    return toDto(row);
  }
}

function toDto(row: ProbeRow): ProbeResponseDto {
  return {
    id: row.id,
    note: row.note,
    createdAt: row.createdAt,
    servedBy: {
      role: row.inRecovery ? 'replica' : 'primary',
      port: Number(row.port),
      inRecovery: row.inRecovery,
    },
  };
}
