import { jest } from '@jest/globals';
import type { ReadBatch, ReadRouterService } from '../database/read-router.service.js';
import type { Statement } from '../database/statement-batch.js';
import type { SearchTuning, VectorQuery } from './search-plan.js';
import { SearchRepository } from './search.repository.js';

const tuning: SearchTuning = {
  efSearch: 40,
  escalationEfSearch: 400,
  escalationExactConcurrency: 1,
  maxScanTuples: 20_000,
  exactMaxRows: 2_000,
  planMemoryMs: 10_000,
  timeoutMs: 3_000,
};

/**
 * A read router whose batches answer from `matching` (the bounded count) and return 20
 * hits for every nearest-neighbour statement; it records the statements it ran.
 */
function fakeRouter(state: { matching: number }): {
  router: ReadRouterService;
  counts: () => number;
} {
  const ran: string[] = [];
  const batch: ReadBatch = (statements: Statement[]) => {
    ran.push(...statements.map((s) => s.sql));
    return Promise.resolve(
      statements.map((s) =>
        s.sql.includes('count(*)')
          ? [{ n: Math.min(state.matching, tuning.exactMaxRows + 1) }]
          : Array.from({ length: 20 }, (_, i) => ({ id: `r${i}`, distance: i / 100 })),
      ),
    );
  };
  const router = {
    readBatches: <T>(fn: (b: ReadBatch) => Promise<T>) => fn(batch),
  } as unknown as ReadRouterService;
  return { router, counts: () => ran.filter((sql) => sql.includes('count(*)')).length };
}

function query(filters: VectorQuery['filters']): VectorQuery {
  return { embedding: [1, 0, 0], filters, limit: 20, maxDistance: 0.8 };
}

describe('SearchRepository plan choice', () => {
  afterEach(() => jest.useRealTimers());

  it('counts a filter set once within VECTOR_PLAN_MEMORY_S, and again after it', async () => {
    jest.useFakeTimers({ now: new Date('2026-12-02T12:00:00Z'), doNotFake: ['nextTick'] });
    const state = { matching: 50 };
    const { router, counts } = fakeRouter(state);
    const repo = new SearchRepository(router);
    expect((await repo.search(query({ cuisine: 'thai' }), tuning)).plan).toBe('exact');
    state.matching = 50_000;
    // remembered: no count, the same (still correct) exact plan
    expect((await repo.search(query({ cuisine: 'thai' }), tuning)).plan).toBe('exact');
    expect(counts()).toBe(1);
    // another filter set is counted on its own
    expect((await repo.search(query({ cuisine: 'thai', tags: ['quick'] }), tuning)).plan).toBe(
      'hnsw',
    );
    expect(counts()).toBe(2);
    jest.advanceTimersByTime(10_001);
    expect((await repo.search(query({ cuisine: 'thai' }), tuning)).plan).toBe('hnsw');
    expect(counts()).toBe(3);
  });

  it('counts every time when the memory is off, and never for an unfiltered search', async () => {
    const { router, counts } = fakeRouter({ matching: 50 });
    const repo = new SearchRepository(router);
    const off = { ...tuning, planMemoryMs: 0 };
    await repo.search(query({ cuisine: 'thai' }), off);
    await repo.search(query({ cuisine: 'thai' }), off);
    await repo.search(query({}), off);
    expect(counts()).toBe(2);
  });
});
