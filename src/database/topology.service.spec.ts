import type { AppConfig } from '../config/app-config.js';
import { MetricsService } from '../monitoring/metrics.service.js';
import type { NodeProbe } from './topology.js';
import { TopologyService } from './topology.service.js';

function probe(name: string, role: NodeProbe['role'], lsn: string | null): NodeProbe {
  return {
    name,
    address: { host: name, port: 5432 },
    reachable: true,
    role,
    timeline: 1,
    lsn,
    replayLagSeconds: 0,
    latencyMs: 1,
  };
}

const config = {
  database: {
    health: { intervalMs: 60_000, timeoutMs: 1_000, healthyThreshold: 1, unhealthyThreshold: 3 },
    readMaxLag: { bytes: 1 << 30, seconds: 3600 },
  },
} as unknown as AppConfig;

function topology(): TopologyService {
  const writer = probe('p', 'primary', '0/5000000');
  const replica = probe('r', 'replica', '0/3000000');
  return new TopologyService(
    config,
    { writer, probes: [writer, replica], replicas: [replica], fenced: [] },
    new MetricsService(),
  );
}

describe('TopologyService: known replay positions', () => {
  it('knows what a replica replayed once a probe saw it, and never more', () => {
    const t = topology();
    expect(t.knownReplayed(['r'], '0/1000000')).toBe(false); // boot probes are not counted
    t.observe(probe('r', 'replica', '0/3000000'));
    expect(t.knownReplayed(['r'], '0/1000000')).toBe(true);
    expect(t.knownReplayed(['r'], '0/3000000')).toBe(true);
    expect(t.knownReplayed(['r'], '0/3000001')).toBe(false);
  });

  it('keeps the highest position seen (a probe answered before a check is not a step back)', () => {
    const t = topology();
    t.noteReplayed('r', '0/4000000');
    t.observe(probe('r', 'replica', '0/3000000'));
    expect(t.knownReplayed(['r'], '0/4000000')).toBe(true);
  });

  it('forgets a node that failed (it may come back restored, rewound or re-cloned)', () => {
    const t = topology();
    t.noteReplayed('r', '0/4000000');
    t.recordFailure('r', 'connection refused', undefined, true);
    expect(t.knownReplayed(['r'], '0/1')).toBe(false);
  });

  it('forgets every position when the writer changes (a new timeline)', () => {
    const t = topology();
    t.noteReplayed('r', '0/4000000');
    t.setWriter('r');
    expect(t.knownReplayed(['r'], '0/1')).toBe(false);
  });

  it('needs every node named (behind PgBouncer any replica may answer)', () => {
    const t = topology();
    t.noteReplayed('r', '0/4000000');
    expect(t.knownReplayed(['r', 'p'], '0/1')).toBe(false);
  });

  it('records nothing for a node answering as a primary', () => {
    const t = topology();
    t.noteReplayed('r', '0/4000000');
    t.observe(probe('r', 'primary', '0/6000000'));
    expect(t.knownReplayed(['r'], '0/1')).toBe(false);
  });
});

describe('TopologyService: replicas discovered at run time', () => {
  const twoChecks = {
    ...config,
    database: { ...config.database, health: { ...config.database.health, healthyThreshold: 2 } },
  };
  const fresh = (): TopologyService => {
    const writer = probe('p', 'primary', '0/5000000');
    return new TopologyService(
      twoChecks,
      { writer, probes: [writer], replicas: [], fenced: [] },
      new MetricsService(),
    );
  };
  const replicaAt = (lsn: string | null): NodeProbe => ({
    ...probe('n:5432', 'replica', lsn),
    address: { host: 'n', port: 5432 },
  });

  it('adds a replica unhealthy; it reads only after DB_HEALTHY_THRESHOLD checks that found it replaying', () => {
    const t = fresh();
    const events: string[] = [];
    t.on((e) => events.push(e.kind));
    expect(t.addNode({ host: 'n', port: 5432 }, 'test')).toBe(true);
    expect(t.addNode({ host: 'n', port: 5432 }, 'test')).toBe(false);
    expect(events).toEqual(['node-added']);
    expect(t.isDiscovered('n:5432')).toBe(true);
    expect(t.readCandidates()).toEqual([]);
    expect(t.exclusion('n:5432')).toBe('unhealthy');
    t.observe(replicaAt(null));
    t.observe(replicaAt(null));
    expect(t.exclusion('n:5432')).toBe('no WAL replayed yet');
    t.observe(replicaAt('0/5000000'));
    expect(t.readCandidates()).toEqual(['n:5432']);
  });

  it('keeps a discovered replica out while it lags beyond the bound', () => {
    const t = new TopologyService(
      {
        ...twoChecks,
        database: { ...twoChecks.database, readMaxLag: { bytes: 1000, seconds: 3600 } },
      },
      {
        writer: probe('p', 'primary', '0/5000000'),
        probes: [probe('p', 'primary', '0/5000000')],
        replicas: [],
        fenced: [],
      },
      new MetricsService(),
    );
    t.addNode({ host: 'n', port: 5432 }, 'test');
    t.observe(replicaAt('0/1000000'));
    t.observe(replicaAt('0/1000000'));
    // lag is measured against the writer's position of a check round
    (t as unknown as { updateLag(): void }).updateLag();
    expect(t.exclusion('n:5432')).toMatch(/^lag \d+ bytes > 1000$/);
  });

  it('removes only discovered replicas, never DB_NODES or the writer', () => {
    const t = topology();
    const events: string[] = [];
    t.on((e) => events.push(`${e.kind}`));
    expect(t.removeNode('r', 'test')).toBe(false);
    expect(t.removeNode('p', 'test')).toBe(false);
    t.addNode({ host: 'n', port: 5432 }, 'test');
    expect(t.removeNode('n:5432', 'test')).toBe(true);
    expect(t.names()).toEqual(['p', 'r']);
    expect(events).toEqual(['node-added', 'node-removed']);
  });
});
