/**
 * The replica autoscaler's decision (spec read_replicas.scaling: min 1, max 2, CPU 70 %,
 * connections 80 %), a pure function of the fleet, its load and what was done before, so
 * the RDS and the local-stack drivers share it and tests can drive it minute by minute.
 *
 * - Below `minReplicas` (a replica was lost) → add; above `maxReplicas` → remove the newest.
 * - Add when every load sample of the last `scaleOutPeriodMs` breaches a threshold (fleet
 *   average CPU ≥ `cpuPercent`, or connections ≥ `connectionsPercent` of max_connections)
 *   and `scaleOutCooldownMs` has passed since the last change.
 * - Remove the newest replica this autoscaler created when every sample of the last
 *   `scaleInPeriodMs` is below both scale-in thresholds and `scaleInCooldownMs` has passed;
 *   replicas it did not create (the stack's own) are never removed.
 * - Nothing while a replica is being created, deleted or is otherwise not `available`.
 * - After a failed call, nothing until a backoff (`retryBaseMs` doubled per consecutive
 *   failure, at most `retryMaxMs`) has passed: a failure is retried, never looped.
 */
export interface AutoscalingPolicy {
  minReplicas: number;
  maxReplicas: number;
  cpuPercent: number;
  connectionsPercent: number;
  scaleInCpuPercent: number;
  scaleInConnectionsPercent: number;
  scaleOutPeriodMs: number;
  scaleInPeriodMs: number;
  scaleOutCooldownMs: number;
  scaleInCooldownMs: number;
  /** Spacing of the load samples (the metric period, or the evaluation interval): a window is covered when no gap in it is longer than 1.5 of these. */
  sampleStepMs: number;
  /**
   * How far behind `now` the newest sample may be (CloudWatch publishes a minute's RDS
   * metrics a few minutes late): windows end at the newest sample, which must be this fresh.
   */
  sampleLagMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface ReplicaView {
  id: string;
  /** RDS DBInstanceStatus (`available`, `creating`, `deleting`, `modifying`, …). */
  status: string;
  createdAt: Date | null;
  /** Created by this autoscaler (tagged so): the only replicas it removes. */
  managed: boolean;
  /** Where it accepts connections, once it does (the topology discovers it there). */
  endpoint?: { host: string; port: number };
}

/** The fleet's average load over one sample period ending at `at` (ms since epoch). */
export interface LoadSample {
  at: number;
  cpuPercent: number;
  connectionsPercent: number;
}

export interface AutoscalingState {
  /** When the last add or remove was requested (ms), or null. */
  lastChangeAt: number | null;
  /** Consecutive failed adds/removes, and when the last one failed. */
  failures: number;
  lastFailureAt: number | null;
}

export type Decision =
  | { action: 'none'; reason: string }
  | { action: 'add'; reason: string }
  | { action: 'remove'; id: string; reason: string };

const pct = (v: number): string => `${v.toFixed(1)} %`;
const secs = (ms: number): string => `${Math.ceil(ms / 1000)} s`;

/** The wait after `failures` consecutive failures. */
export function retryDelayMs(policy: AutoscalingPolicy, failures: number): number {
  return Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.max(0, failures - 1));
}

/** The samples of the `periodMs` before `end`, or null when they do not cover it. */
function windowOf(
  samples: LoadSample[],
  end: number,
  periodMs: number,
  stepMs: number,
): LoadSample[] | null {
  const start = end - periodMs;
  const inside = samples.filter((s) => s.at > start && s.at <= end).sort((a, b) => a.at - b.at);
  if (inside.length === 0) {
    return null;
  }
  // Covered: the oldest sample ends within a step of the window's start and no two are
  // further apart than a step (half a step of slack for a timer's jitter): none is missing.
  const slack = stepMs * 1.5;
  if (inside[0].at - start > slack) {
    return null;
  }
  for (let i = 1; i < inside.length; i++) {
    if (inside[i].at - inside[i - 1].at > slack) {
      return null;
    }
  }
  return inside;
}

function newestManaged(replicas: ReplicaView[]): ReplicaView | undefined {
  return replicas
    .filter((r) => r.managed)
    .sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0))[0];
}

export function decide(
  policy: AutoscalingPolicy,
  replicas: ReplicaView[],
  samples: LoadSample[],
  state: AutoscalingState,
  now: number,
): Decision {
  const changing = replicas.filter((r) => r.status !== 'available');
  if (changing.length > 0) {
    return {
      action: 'none',
      reason: `waiting: ${changing.map((r) => `${r.id} is ${r.status}`).join(', ')}`,
    };
  }
  if (state.failures > 0 && state.lastFailureAt !== null) {
    const wait = retryDelayMs(policy, state.failures) - (now - state.lastFailureAt);
    if (wait > 0) {
      return {
        action: 'none',
        reason: `backing off after ${state.failures} failed attempt(s): next in ${secs(wait)}`,
      };
    }
  }
  const n = replicas.length;
  if (n < policy.minReplicas) {
    return { action: 'add', reason: `${n} replica(s), below minReplicas ${policy.minReplicas}` };
  }
  if (n > policy.maxReplicas) {
    const victim = newestManaged(replicas);
    return victim
      ? {
          action: 'remove',
          id: victim.id,
          reason: `${n} replicas, above maxReplicas ${policy.maxReplicas}`,
        }
      : {
          action: 'none',
          reason: `${n} replicas above maxReplicas, none created by the autoscaler`,
        };
  }
  const sinceChange = state.lastChangeAt === null ? Infinity : now - state.lastChangeAt;
  const fresh = samples.filter((s) => s.at <= now);
  const end = fresh.length > 0 ? Math.max(...fresh.map((s) => s.at)) : null;
  if (end === null || now - end > policy.sampleLagMs) {
    return {
      action: 'none',
      reason:
        end === null
          ? 'no load samples'
          : `load samples are stale: the newest is ${secs(now - end)} old`,
    };
  }

  const out = windowOf(fresh, end, policy.scaleOutPeriodMs, policy.sampleStepMs);
  const hot =
    out !== null &&
    out.every(
      (s) => s.cpuPercent >= policy.cpuPercent || s.connectionsPercent >= policy.connectionsPercent,
    );
  if (out && hot && n >= policy.maxReplicas) {
    return {
      action: 'none',
      reason: `load above threshold, but at maxReplicas ${policy.maxReplicas}`,
    };
  }
  if (out && hot) {
    {
      const cpu = Math.min(...out.map((s) => s.cpuPercent));
      const conns = Math.min(...out.map((s) => s.connectionsPercent));
      const what = `CPU ≥ ${pct(Math.min(cpu, policy.cpuPercent))} or connections ≥ ${pct(Math.min(conns, policy.connectionsPercent))} for ${secs(policy.scaleOutPeriodMs)}`;
      if (sinceChange < policy.scaleOutCooldownMs) {
        return {
          action: 'none',
          reason: `${what}, but in the cooldown: ${secs(policy.scaleOutCooldownMs - sinceChange)} left`,
        };
      }
      return {
        action: 'add',
        reason: `fleet average above threshold (CPU ${policy.cpuPercent} % / connections ${policy.connectionsPercent} %) in every sample of ${secs(policy.scaleOutPeriodMs)}; lowest CPU ${pct(cpu)}, lowest connections ${pct(conns)}`,
      };
    }
  }
  const inWindow = windowOf(fresh, end, policy.scaleInPeriodMs, policy.sampleStepMs);
  if (inWindow && n > policy.minReplicas) {
    const idle = inWindow.every(
      (s) =>
        s.cpuPercent < policy.scaleInCpuPercent &&
        s.connectionsPercent < policy.scaleInConnectionsPercent,
    );
    if (idle) {
      const victim = newestManaged(replicas);
      if (!victim) {
        return {
          action: 'none',
          reason: 'load is low, but no replica was created by the autoscaler',
        };
      }
      if (sinceChange < policy.scaleInCooldownMs) {
        return {
          action: 'none',
          reason: `load is low, but in the cooldown: ${secs(policy.scaleInCooldownMs - sinceChange)} left`,
        };
      }
      const cpu = Math.max(...inWindow.map((s) => s.cpuPercent));
      const conns = Math.max(...inWindow.map((s) => s.connectionsPercent));
      return {
        action: 'remove',
        id: victim.id,
        reason: `fleet average below CPU ${policy.scaleInCpuPercent} % and connections ${policy.scaleInConnectionsPercent} % in every sample of ${secs(policy.scaleInPeriodMs)}; highest CPU ${pct(cpu)}, highest connections ${pct(conns)}`,
      };
    }
  }
  if (!out) {
    return {
      action: 'none',
      reason: `not enough load samples yet for ${secs(policy.scaleOutPeriodMs)}`,
    };
  }
  return { action: 'none', reason: `${n} replica(s) within bounds, load within thresholds` };
}
