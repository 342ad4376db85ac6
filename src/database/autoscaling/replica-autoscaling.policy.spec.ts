import {
  AutoscalingPolicy,
  AutoscalingState,
  decide,
  LoadSample,
  ReplicaView,
  retryDelayMs,
} from './replica-autoscaling.policy.js';

const MIN = 60_000;
const POLICY: AutoscalingPolicy = {
  minReplicas: 1,
  maxReplicas: 2,
  cpuPercent: 70,
  connectionsPercent: 80,
  scaleInCpuPercent: 30,
  scaleInConnectionsPercent: 40,
  scaleOutPeriodMs: 5 * MIN,
  scaleInPeriodMs: 15 * MIN,
  scaleOutCooldownMs: 10 * MIN,
  scaleInCooldownMs: 30 * MIN,
  sampleStepMs: MIN,
  sampleLagMs: 5 * MIN,
  retryBaseMs: 5 * MIN,
  retryMaxMs: 60 * MIN,
};
const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const FRESH: AutoscalingState = { lastChangeAt: null, failures: 0, lastFailureAt: null };

const replica = (id: string, over: Partial<ReplicaView> = {}): ReplicaView => ({
  id,
  status: 'available',
  createdAt: new Date(NOW - 24 * 60 * MIN),
  managed: false,
  ...over,
});
/** One sample a minute for `minutes`, the newest at NOW. */
const load = (minutes: number, cpu: number | ((i: number) => number), conns = 10): LoadSample[] =>
  Array.from({ length: minutes }, (_, i) => ({
    at: NOW - i * MIN,
    cpuPercent: typeof cpu === 'function' ? cpu(i) : cpu,
    connectionsPercent: conns,
  }));

describe('replica autoscaling policy (spec read_replicas.scaling)', () => {
  const one = [replica('prod-dbu-replica-1')];

  it('adds a replica when CPU stays at or above 70 % for the whole period', () => {
    const d = decide(POLICY, one, load(5, 75), FRESH, NOW);
    expect(d.action).toBe('add');
    expect(d.reason).toContain('lowest CPU 75.0 %');
  });

  it('adds a replica when connections stay at or above 80 % while CPU is low', () => {
    expect(decide(POLICY, one, load(5, 10, 85), FRESH, NOW).action).toBe('add');
  });

  it('does not add for a spike: one sample under the threshold in the period holds it back', () => {
    const d = decide(
      POLICY,
      one,
      load(5, (i) => (i === 3 ? 65 : 90)),
      FRESH,
      NOW,
    );
    expect(d).toEqual({
      action: 'none',
      reason: '1 replica(s) within bounds, load within thresholds',
    });
  });

  it('reads the window up to the newest sample, and nothing from stale samples', () => {
    const late = load(5, 90).map((s) => ({ ...s, at: s.at - 3 * MIN }));
    expect(decide(POLICY, one, late, FRESH, NOW).action).toBe('add');
    const stale = load(5, 90).map((s) => ({ ...s, at: s.at - 6 * MIN }));
    expect(decide(POLICY, one, stale, FRESH, NOW).reason).toBe(
      'load samples are stale: the newest is 360 s old',
    );
    expect(decide(POLICY, one, [], FRESH, NOW).reason).toBe('no load samples');
  });

  it('does not decide on a window that the samples do not cover (metrics just started, or a gap)', () => {
    expect(decide(POLICY, one, load(3, 95), FRESH, NOW).reason).toMatch(/not enough load samples/);
    const gap = load(5, 95).filter((_, i) => i !== 2);
    expect(decide(POLICY, one, gap, FRESH, NOW).action).toBe('none');
  });

  it('takes samples a timer spaced unevenly (within half a step), not a longer gap', () => {
    const step = 1_000;
    const local = {
      ...POLICY,
      scaleOutPeriodMs: 3 * step,
      sampleStepMs: step,
      sampleLagMs: 3 * step,
    };
    const at = (offsets: number[]): LoadSample[] =>
      offsets.map((o) => ({ at: NOW - o, cpuPercent: 100, connectionsPercent: 5 }));
    expect(decide(local, one, at([0, 1_200, 2_300, 3_100]), FRESH, NOW).action).toBe('add');
    // 1.6 steps between two samples: the window is not covered
    expect(decide(local, one, at([0, 1_600, 2_600, 3_100]), FRESH, NOW).action).toBe('none');
  });

  it('never goes above maxReplicas, however high the load', () => {
    const two = [...one, replica('prod-dbu-replica-auto-1', { managed: true })];
    const d = decide(POLICY, two, load(5, 99, 99), FRESH, NOW);
    expect(d).toEqual({ action: 'none', reason: 'load above threshold, but at maxReplicas 2' });
  });

  it('waits out the scale-out cooldown after a change, then adds', () => {
    const state = { ...FRESH, lastChangeAt: NOW - 4 * MIN };
    const d = decide(POLICY, one, load(5, 90), state, NOW);
    expect(d.action).toBe('none');
    expect(d.reason).toContain('in the cooldown: 360 s left');
    expect(
      decide(POLICY, one, load(5, 90), { ...FRESH, lastChangeAt: NOW - 10 * MIN }, NOW).action,
    ).toBe('add');
  });

  it('removes the newest replica it created when load stays low for the scale-in period', () => {
    const fleet = [
      ...one,
      replica('prod-dbu-replica-auto-a', { managed: true, createdAt: new Date(NOW - 120 * MIN) }),
      replica('prod-dbu-replica-auto-b', { managed: true, createdAt: new Date(NOW - 60 * MIN) }),
    ];
    const policy = { ...POLICY, maxReplicas: 3 };
    const d = decide(policy, fleet, load(15, 5, 5), FRESH, NOW);
    expect(d).toMatchObject({ action: 'remove', id: 'prod-dbu-replica-auto-b' });
  });

  it('never removes a replica it did not create, and never goes below minReplicas', () => {
    const two = [...one, replica('prod-dbu-replica-2')];
    expect(decide(POLICY, two, load(15, 5, 5), FRESH, NOW).reason).toBe(
      'load is low, but no replica was created by the autoscaler',
    );
    const auto = [replica('prod-dbu-replica-auto-a', { managed: true })];
    expect(decide(POLICY, auto, load(15, 0, 0), FRESH, NOW).action).toBe('none');
  });

  it('waits out the scale-in cooldown after a change', () => {
    const two = [...one, replica('prod-dbu-replica-auto-a', { managed: true })];
    const d = decide(POLICY, two, load(15, 5, 5), { ...FRESH, lastChangeAt: NOW - 20 * MIN }, NOW);
    expect(d.reason).toBe('load is low, but in the cooldown: 600 s left');
  });

  it('keeps a replica when load between the scale-in and scale-out thresholds', () => {
    const two = [...one, replica('prod-dbu-replica-auto-a', { managed: true })];
    expect(decide(POLICY, two, load(15, 50, 50), FRESH, NOW).action).toBe('none');
  });

  it('restores minReplicas at once, and trims a fleet above maxReplicas', () => {
    expect(decide(POLICY, [], [], FRESH, NOW)).toEqual({
      action: 'add',
      reason: '0 replica(s), below minReplicas 1',
    });
    const three = [
      ...one,
      replica('prod-dbu-replica-auto-a', { managed: true, createdAt: new Date(NOW - 9 * MIN) }),
      replica('prod-dbu-replica-auto-b', { managed: true, createdAt: new Date(NOW - 8 * MIN) }),
    ];
    expect(decide(POLICY, three, [], FRESH, NOW)).toMatchObject({
      action: 'remove',
      id: 'prod-dbu-replica-auto-b',
    });
  });

  it('does nothing while a replica is being created or deleted', () => {
    const fleet = [
      ...one,
      replica('prod-dbu-replica-auto-a', { managed: true, status: 'creating' }),
    ];
    expect(decide(POLICY, fleet, load(15, 99), FRESH, NOW)).toEqual({
      action: 'none',
      reason: 'waiting: prod-dbu-replica-auto-a is creating',
    });
  });

  it('after a failure, waits a doubling backoff before trying again (never a tight loop)', () => {
    expect([1, 2, 3, 4, 5, 6].map((f) => retryDelayMs(POLICY, f) / MIN)).toEqual([
      5, 10, 20, 40, 60, 60,
    ]);
    const failed = { lastChangeAt: null, failures: 2, lastFailureAt: NOW - 9 * MIN };
    expect(decide(POLICY, one, load(5, 90), failed, NOW).reason).toBe(
      'backing off after 2 failed attempt(s): next in 60 s',
    );
    expect(
      decide(POLICY, one, load(5, 90), { ...failed, lastFailureAt: NOW - 10 * MIN }, NOW).action,
    ).toBe('add');
  });
});
