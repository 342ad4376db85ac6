import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { NotFoundError } from '../common/errors.js';
import { ROUTE_LABELS } from '../database/database.tokens.js';
import { JobRunRow, JobRunsRepository } from '../database/job-runs.repository.js';
import type { RouteLabels } from '../database/read-router.service.js';
import { NodeState, TopologyService } from '../database/topology.service.js';
import type { ProbeResponseDto } from './dto/probe.dto.js';
import { ProbeRow, ProbesRepository } from './probes.repository.js';

export interface TopologyView {
  writer: string;
  routing: { writes: string; reads: string[]; readDefault: string; viaPgBouncer: boolean };
  nodes: Array<
    Pick<
      NodeState,
      'name' | 'role' | 'healthy' | 'consecutiveFailures' | 'lastCheckedAt' | 'lastError'
    > & {
      timeline: number | null;
      lsn: string | null;
      replayLagSeconds: number | null;
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
  ) {}

  async topology(): Promise<TopologyView> {
    await this.topologyService.refresh();
    return {
      writer: this.topologyService.writerName,
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
        timeline: s.lastProbe.timeline,
        lsn: s.lastProbe.lsn,
        replayLagSeconds: s.lastProbe.replayLagSeconds,
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
