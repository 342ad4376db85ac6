import type { DatabaseConfig, NodeAddress } from '../config/app-config.js';
import { directClientConfig, nodeName, withDirectClient } from './pg-direct.js';

export type NodeRole = 'primary' | 'replica' | 'unknown';

export interface NodeProbe {
  name: string;
  address: NodeAddress;
  reachable: boolean;
  role: NodeRole;
  timeline: number | null;
  /** Primary: current WAL LSN. Replica: last replayed LSN. */
  lsn: string | null;
  /** Replica only: seconds since the last replayed transaction when it is behind, else 0. */
  replayLagSeconds: number | null;
  latencyMs: number;
  error?: string;
}

const PROBE_SQL = `
  SELECT pg_is_in_recovery() AS in_recovery,
         -- A primary's current timeline is in its WAL file name: pg_control_checkpoint()
         -- only shows the new one after the first checkpoint following a promotion.
         CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
              ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text
              ELSE pg_current_wal_lsn()::text END AS lsn,
         CASE WHEN NOT pg_is_in_recovery() THEN NULL
              WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
              ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END AS lag_s`;

/** Asks one node what it is. Never throws: an unreachable node is a result. */
export async function probeNode(
  db: DatabaseConfig,
  node: NodeAddress,
  timeoutMs: number,
): Promise<NodeProbe> {
  const started = Date.now();
  const name = nodeName(node);
  try {
    const row = await withDirectClient(
      directClientConfig(db, node, { timeoutMs, applicationName: 'database-unit:probe' }),
      async (c) => (await c.query(PROBE_SQL)).rows[0] as Record<string, unknown>,
    );
    return {
      name,
      address: node,
      reachable: true,
      role: row.in_recovery ? 'replica' : 'primary',
      timeline: row.timeline === null ? null : Number(row.timeline),
      lsn: (row.lsn as string | null) ?? null,
      replayLagSeconds: row.lag_s === null ? null : Number(row.lag_s),
      latencyMs: Date.now() - started,
    };
  } catch (err) {
    return {
      name,
      address: node,
      reachable: false,
      role: 'unknown',
      timeline: null,
      lsn: null,
      replayLagSeconds: null,
      latencyMs: Date.now() - started,
      error: err instanceof Error ? err.message : String(err),
    };
  }
}

/**
 * The writer is the reachable non-recovery node on the highest timeline; a
 * non-recovery node on an older timeline is a former primary and is fenced.
 */
export function chooseWriter(probes: NodeProbe[]): {
  writer: NodeProbe | null;
  fenced: NodeProbe[];
} {
  const primaries = probes
    .filter((p) => p.reachable && p.role === 'primary')
    .sort((a, b) => (b.timeline ?? 0) - (a.timeline ?? 0));
  if (primaries.length === 0) {
    return { writer: null, fenced: [] };
  }
  const top = primaries[0];
  return {
    writer: top,
    fenced: primaries.slice(1).filter((p) => (p.timeline ?? 0) < (top.timeline ?? 0)),
  };
}

/** Parses a PostgreSQL LSN ("16/B374D848") into a bigint byte position. */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}
