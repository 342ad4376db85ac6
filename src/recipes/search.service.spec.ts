import type { AppConfig } from '../config/app-config.js';
import type { SearchResult, VectorQuery } from './search-plan.js';
import { SearchService } from './search.service.js';

/** A SearchService whose recall checks take about `checkMs` each (counted in `checks`). */
function service(budget: number, checkMs: number): { svc: SearchService; checks: () => number } {
  let checks = 0;
  const config = { vector: { recallSampleRate: 1, recallCheckBudget: budget } } as AppConfig;
  const searches = {
    exactIds: async (): Promise<string[]> => {
      checks++;
      await new Promise((resolve) => setTimeout(resolve, checkMs));
      return [];
    },
  };
  const svc = new SearchService(
    config,
    null as never,
    searches as never,
    null as never,
    null,
    null as never,
    null as never,
  );
  return { svc, checks: () => checks };
}

const query = { embedding: [1, 0], filters: {}, limit: 1, maxDistance: 1 } as VectorQuery;
const result = { plan: 'hnsw', exactFallback: false, hits: [] } as SearchResult;

/** The private sampler, as a search calls it after answering; resolves when its check ends. */
async function sample(svc: SearchService): Promise<void> {
  (svc as unknown as { maybeCheckRecall(q: VectorQuery, r: SearchResult): void }).maybeCheckRecall(
    query,
    result,
  );
  await svc.onApplicationShutdown();
}

describe('SearchService recall sampling', () => {
  it('runs a check for every sampled search when the budget is the whole time', async () => {
    const { svc, checks } = service(1, 5);
    await sample(svc);
    await sample(svc);
    await sample(svc);
    expect(checks()).toBe(3);
  });

  it('waits after a check so that checks take at most the budget of the time', async () => {
    // a check of ≥ 20 ms at a 1 % budget: the next may start ≥ 1.98 s after it ended
    const { svc, checks } = service(0.01, 20);
    await sample(svc);
    await sample(svc);
    await sample(svc);
    expect(checks()).toBe(1);
  });
});
