/**
 * The search-result cache under writes: POST /v1/recipes/search with a Zipf-distributed
 * set of query vectors, mixed with a share of recipe writes, and the hit rate the
 * service's counters show (`cache_hits_total{type="search_results"}`).
 */
import { EmbeddingModel, DEFAULT_DATASET, vectorLiteral } from './dataset.js';
import { Progress, log } from './progress.js';
import { Rng } from './rng.js';
import type { HttpClient } from './service.js';
import { clientConfig, withClient, type StackEnv } from './stack.js';
import { round, summarize, type LatencySummary } from './stats.js';
import { Zipf } from './cache-workload.js';
import type { Sample } from './cache-workload.js';
import { metricSum } from './cache-workload.js';

const DIMS = 1536;
const UPDATE_BATCH = 100;

/** What the mixed runs write: write-behind title PATCHes, or creates (write-through, with an embedding). */
export type WriteKind = 'patch' | 'create';

function model(seed: number): EmbeddingModel {
  return new EmbeddingModel({ ...DEFAULT_DATASET, seed, dims: DIMS });
}

/**
 * Gives the first `count` of `ids` an embedding (drawn from the bench's clustered
 * distribution) unless at least that many recipes have one already. Returns how many
 * rows carry an embedding afterwards.
 */
export async function ensureEmbeddings(
  env: StackEnv,
  database: string,
  ids: readonly string[],
  count: number,
  seed: number,
): Promise<number> {
  return withClient({ ...clientConfig(env, env.primary, database) }, async (c) => {
    const have = Number(
      (
        await c.query<{ n: string }>(
          'SELECT count(*) AS n FROM recipes WHERE embedding IS NOT NULL',
        )
      ).rows[0].n,
    );
    if (have >= count) {
      log(`search data: ${have} recipes already have an embedding`);
      return have;
    }
    const m = model(seed);
    const rng = new Rng(seed ^ 0x2545f491);
    const v = new Float32Array(DIMS);
    const progress = new Progress('embed recipes', count, 'rows');
    for (let done = 0; done < count;) {
      const batch = ids.slice(done, done + UPDATE_BATCH).map((id) => {
        m.sample(rng, v);
        return { id, e: vectorLiteral(v) };
      });
      await c.query(
        `UPDATE recipes r SET embedding = x.e::vector
           FROM json_to_recordset($1::json) AS x(id uuid, e text) WHERE r.id = x.id`,
        [JSON.stringify(batch)],
      );
      done += batch.length;
      progress.update(done);
    }
    progress.done(count);
    await c.query('ANALYZE recipes');
    return count;
  });
}

/** `count` search bodies (limit 20, the default maxDistance), pre-serialised. */
export function searchBodies(count: number, seed: number): Buffer[] {
  const m = model(seed);
  const rng = new Rng(seed ^ 0x68e31da4);
  const v = new Float32Array(DIMS);
  return Array.from({ length: count }, () => {
    m.sample(rng, v);
    return Buffer.from(JSON.stringify({ embedding: Array.from(v), limit: 20 }));
  });
}

export interface MixedLoopResult {
  seconds: number;
  searches: number;
  writes: number;
  errors: number;
  failures: Record<string, number>;
  /** completed requests per second (searches + writes) */
  rps: number;
  searchLatencyMs: LatencySummary;
  writeLatencyMs: LatencySummary | null;
  /** searches for a query this run had sent before: the best any cache could do without writes */
  ideal: number;
}

/**
 * `concurrency` closed-loop workers: each request is a write with probability
 * `writeShare`, else a search for query rank `zipf.sample()`. `seen` carries the
 * query ranks sent so far (warm-up and measured phase).
 */
export async function mixedLoop(opts: {
  http: HttpClient;
  auth: Record<string, string>;
  bodies: readonly Buffer[];
  zipf: Zipf;
  rng: Rng;
  writeShare: number;
  writeKind: WriteKind;
  /** recipes the PATCHes go to */
  writeIds: readonly string[];
  writeSeed: number;
  concurrency: number;
  durationS: number;
  seen: Set<number>;
  label: string;
}): Promise<MixedLoopResult> {
  const searchMs: number[] = [];
  const writeMs: number[] = [];
  const failures: Record<string, number> = {};
  let errors = 0;
  let repeats = 0;
  let writeNo = 0;
  const m = model(opts.writeSeed);
  const vrng = new Rng(opts.writeSeed);
  const v = new Float32Array(DIMS);
  const write = async (): Promise<number> => {
    const n = writeNo++;
    if (opts.writeKind === 'patch') {
      const id = opts.writeIds[opts.rng.int(opts.writeIds.length)];
      const body = Buffer.from(JSON.stringify({ title: `Mixed write ${n}` }));
      return (await opts.http.request('PATCH', `/v1/recipes/${id}`, body, opts.auth)).status;
    }
    m.sample(vrng, v);
    const body = Buffer.from(
      JSON.stringify({
        title: `Mixed create ${n}`,
        ingredients: ['flour'],
        steps: ['mix'],
        cuisine: 'italian',
        totalMinutes: 20,
        embedding: Array.from(v),
      }),
    );
    return (await opts.http.request('POST', '/v1/recipes', body, opts.auth)).status;
  };
  const t0 = performance.now();
  const end = t0 + opts.durationS * 1000;
  const progress = new Progress(opts.label, opts.durationS, 's', 5_000);
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (performance.now() < end) {
        const isWrite = opts.rng.uniform() < opts.writeShare;
        let rank = -1;
        if (!isWrite) {
          rank = opts.zipf.sample(opts.rng);
          if (opts.seen.has(rank)) {
            repeats++;
          } else {
            opts.seen.add(rank);
          }
        }
        const s = performance.now();
        let status: number | string;
        try {
          status = isWrite
            ? await write()
            : (await opts.http.request('POST', '/v1/recipes/search', opts.bodies[rank], opts.auth))
                .status;
        } catch (err) {
          status = `error: ${err instanceof Error ? err.message : String(err)}`.slice(0, 80);
        }
        (isWrite ? writeMs : searchMs).push(performance.now() - s);
        if (typeof status !== 'number' || status < 200 || status > 299) {
          errors++;
          const key = `${isWrite ? 'write' : 'search'} ${String(status)}`;
          failures[key] = (failures[key] ?? 0) + 1;
        }
        progress.update(Math.round((performance.now() - t0) / 1000));
      }
    }),
  );
  const seconds = progress.done(opts.durationS);
  return {
    seconds: round(seconds, 2),
    searches: searchMs.length,
    writes: writeMs.length,
    errors,
    failures,
    rps: round((searchMs.length + writeMs.length) / seconds, 1),
    searchLatencyMs: summarize(searchMs),
    writeLatencyMs: writeMs.length > 0 ? summarize(writeMs) : null,
    ideal: round(repeats / Math.max(1, searchMs.length), 4),
  };
}

export interface SearchCacheCounts {
  l1Hits: number;
  l1Misses: number;
  l2Hits: number;
  l2Misses: number;
  /** generation bumps the service sent (cache_generation_bumps_total; 0 before the mechanism existed) */
  bumps: number;
}

/** The service's search-result cache counters between two scrapes. */
export function searchCacheCounts(before: Sample[], after: Sample[]): SearchCacheCounts {
  const d = (name: string, labels: Record<string, string>): number =>
    metricSum(after, name, labels) - metricSum(before, name, labels);
  const type = 'search_results';
  return {
    l1Hits: d('cache_hits_total', { tier: 'l1', type }),
    l1Misses: d('cache_misses_total', { tier: 'l1', type }),
    l2Hits: d('cache_hits_total', { tier: 'l2', type }),
    l2Misses: d('cache_misses_total', { tier: 'l2', type }),
    bumps: d('cache_generation_bumps_total', { type }),
  };
}

export { Zipf };
