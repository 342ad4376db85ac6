import type { DataSource } from 'typeorm';
import type { PersonalDataCipher } from '../security/crypto/personal-data-cipher.js';
import type { AuditKeysService } from './audit-keys.service.js';
import { chainHash, GENESIS_HASH } from './audit-hash.js';
import type { AuditRepository, AuditRow, ChainPoint } from './audit.repository.js';
import { AuditService } from './audit.service.js';

/**
 * The verification's walk over an in-memory chain (the e2e tests walk the real one,
 * test/audit.e2e-spec.ts): what is checked here is how concurrent calls share a walk.
 */
function chain(n: number): AuditRow[] {
  const rows: AuditRow[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq += 1) {
    const fields = {
      seq,
      occurredAtMs: 1_795_651_200_000 + seq,
      eventType: 'data_modifications' as const,
      actor: 'key-1',
      subjectId: null,
      resource: `recipe:${seq}`,
      action: 'update',
      requestId: null,
      details: null,
      prevHash,
    };
    const hash = chainHash(fields);
    rows.push({ ...fields, hash });
    prevHash = hash;
  }
  return rows;
}

function service(rows: AuditRow[]) {
  const calls = { chunk: 0, saveVerification: 0 };
  const head = (): ChainPoint => ({ seq: rows.length, hash: rows[rows.length - 1].hash });
  const repo = {
    head: async () => head(),
    lastVerification: async () => null,
    retentionSeal: async () => null,
    digests: async () => [],
    chunk: async (afterSeq: number, maxSeq: number, limit: number) => {
      calls.chunk += 1;
      // a database round trip: the callers that arrive meanwhile find the walk in flight
      await new Promise((resolve) => setImmediate(resolve));
      return rows.filter((r) => r.seq > afterSeq && r.seq <= maxSeq).slice(0, limit);
    },
    saveVerification: async () => {
      calls.saveVerification += 1;
    },
  } as unknown as AuditRepository;
  const audit = new AuditService(
    repo,
    {} as AuditKeysService,
    {} as PersonalDataCipher,
    {} as DataSource,
  );
  return { audit, calls };
}

describe('AuditService.verify', () => {
  it('lets concurrent API calls of one mode share the walk in flight', async () => {
    const { audit, calls } = service(chain(2500));
    const reports = await Promise.all([audit.verify(), audit.verify(), audit.verify()]);
    // 2,500 rows in chunks of 1,000: three chunk reads for one walk, not nine
    expect(calls.chunk).toBe(3);
    for (const report of reports) {
      expect(report).toMatchObject({ valid: true, mode: 'full', rowsChecked: 2500 });
    }
    expect(reports[1]).toBe(reports[0]);
  });

  it('starts a new walk once the one in flight has ended', async () => {
    const { audit, calls } = service(chain(10));
    await audit.verify();
    await audit.verify();
    expect(calls.chunk).toBe(2);
  });

  it('walks each mode on its own, and a recording walk never joins another', async () => {
    const { audit, calls } = service(chain(10));
    const [full, incremental, recorded] = await Promise.all([
      audit.verify({ mode: 'full' }),
      audit.verify({ mode: 'incremental' }),
      audit.verify({ mode: 'full', record: true }),
    ]);
    expect(calls.chunk).toBe(3);
    expect(full.mode).toBe('full');
    expect(incremental.mode).toBe('incremental');
    expect(recorded.valid).toBe(true);
    expect(calls.saveVerification).toBe(1);
  });

  it('reports a broken link to every caller that shared the walk', async () => {
    const rows = chain(5);
    rows[2] = { ...rows[2], action: 'delete' };
    const { audit } = service(rows);
    const reports = await Promise.all([audit.verify(), audit.verify()]);
    for (const report of reports) {
      expect(report).toMatchObject({
        valid: false,
        firstBroken: { seq: 3, reason: 'hash does not match the row contents' },
      });
    }
  });
});
