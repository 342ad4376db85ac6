import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { RedisService } from '../cache/redis.service.js';
import { probeAll } from '../database/boot.js';
import { directClientConfig, nodeName, withDirectClient } from '../database/pg-direct.js';
import { lsnToBigInt, NodeProbe } from '../database/topology.js';
import { TopologyService } from '../database/topology.service.js';

/**
 * Terminus indicators for /health/ready. Only the writer is critical (down → 503);
 * a replica, Redis, or a PgBouncer we do not route through shows as degraded.
 */
@Injectable()
export class ReadinessService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly indicators: HealthIndicatorService,
    private readonly topology: TopologyService,
    private readonly redis: RedisService,
  ) {}

  private get timeoutMs(): number {
    return this.config.database.health.timeoutMs;
  }

  /** One probe round per readiness check: all nodes at once, with a deadline. */
  async databaseChecks(): Promise<HealthIndicatorResult[]> {
    const probes = await probeAll(this.config, this.timeoutMs);
    const writerName = this.topology.writerName;
    const writer = probes.find((p) => p.name === writerName);
    const results: HealthIndicatorResult[] = [];

    const primary = this.indicators.check('primary');
    if (writer?.reachable && writer.role === 'primary') {
      results.push(
        primary.up({ node: writer.name, timeline: writer.timeline, latencyMs: writer.latencyMs }),
      );
    } else {
      results.push(
        primary.down({
          node: writerName,
          reason: writer?.reachable
            ? `node is ${writer.role}, not a writable primary`
            : (writer?.error ?? 'unreachable'),
        }),
      );
    }

    for (const probe of probes.filter((p) => p.name !== writerName)) {
      results.push(this.replicaResult(probe, writer));
    }
    return results;
  }

  private replicaResult(probe: NodeProbe, writer: NodeProbe | undefined): HealthIndicatorResult {
    const session = this.indicators.check(`replica:${probe.name}`);
    if (!probe.reachable) {
      return session.degraded({
        node: probe.name,
        state: 'down',
        reason: probe.error ?? 'unreachable',
      });
    }
    if (probe.role !== 'replica') {
      return session.degraded({
        node: probe.name,
        state: 'not-a-replica',
        role: probe.role,
        timeline: probe.timeline,
      });
    }
    const lagBytes =
      writer?.reachable && writer.lsn && probe.lsn
        ? Number(lsnToBigInt(writer.lsn) - lsnToBigInt(probe.lsn))
        : null;
    return session.up({
      node: probe.name,
      lagBytes: lagBytes === null ? null : Math.max(0, lagBytes),
      lagSeconds: probe.replayLagSeconds,
      latencyMs: probe.latencyMs,
    });
  }

  async redisCheck(): Promise<HealthIndicatorResult> {
    const session = this.indicators.check('redis');
    try {
      const latencyMs = await this.redis.ping(this.timeoutMs);
      return session.up({ latencyMs });
    } catch (err) {
      return session.degraded({ state: 'down', reason: (err as Error).message });
    }
  }

  async pgbouncerCheck(): Promise<HealthIndicatorResult | null> {
    const pgb = this.config.pgbouncer;
    if (!pgb) {
      return null;
    }
    const session = this.indicators.check('pgbouncer');
    const started = Date.now();
    try {
      const version = await withDirectClient(
        {
          ...directClientConfig(
            {
              ...this.config.database,
              user: pgb.adminUser,
              password: pgb.adminPassword,
              name: 'pgbouncer',
            },
            { host: pgb.host, port: pgb.port },
            { timeoutMs: this.timeoutMs },
          ),
          // The admin console accepts no startup parameters beyond user/database.
          application_name: undefined,
        },
        async (c) => {
          const res = await c.query('SHOW VERSION');
          const first: unknown = Object.values(res.rows[0] ?? {})[0];
          return typeof first === 'string' ? first : '';
        },
      );
      return session.up({ node: nodeName(pgb), version, latencyMs: Date.now() - started });
    } catch (err) {
      const data = { node: nodeName(pgb), state: 'down', reason: (err as Error).message };
      // Without PgBouncer nothing reaches the database when we route through it.
      return this.config.database.routeViaPgBouncer ? session.down(data) : session.degraded(data);
    }
  }
}
