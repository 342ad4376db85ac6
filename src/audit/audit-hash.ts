import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  seq: number;
  occurredAtMs: number;
  eventType: string;
  actor: string | null;
  subjectId: string | null;
  resource: string;
  action: string;
  requestId: string | null;
  details: unknown;
  prevHash: string;
}

/** JSON with object keys sorted at every level: one byte string per value, whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value ?? null);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

/** SHA-256 over the canonical encoding of a row and the previous row's hash. */
export function chainHash(f: ChainedFields): string {
  const encoded = canonicalJson([
    f.seq,
    f.occurredAtMs,
    f.eventType,
    f.actor,
    f.subjectId,
    f.resource,
    f.action,
    f.requestId,
    f.details ?? null,
    f.prevHash,
  ]);
  return createHash('sha256').update(encoded).digest('hex');
}
