/**
 * bench:search `--regime incremental` (issue 14, target 2): recall the way a live index
 * gets its data, not one bulk build. On top of the bulk-loaded population A:
 *  1. a second population B (its own seed: other cluster centres, another shared
 *     direction) arrives through the service's batch API, 100 recipes a call;
 *  2. searches for B-like queries, every filter case, through the service and as the
 *     same SQL without the service's checks (the index alone);
 *  3. a mass delete (a share of all rows, autovacuum off for the table), searched again
 *     before VACUUM, while a VACUUM runs, and after it.
 * Every phase has its own exact ground truth (computed on the primary).
 */
import { randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { upsertRecipes } from '../../src/recipes/recipes.repository.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { metricSum, parseMetrics } from './cache-workload.js';
import { EmbeddingModel, FILTER_CASES, RecipeFactory } from './dataset.js';
import { InMemoryTable } from './exact-memory.js';
import { log, Progress } from './progress.js';
import { Rng } from './rng.js';
import {
  HttpClient,
  ServiceProcess,
  freePort,
  medianStages,
  parseServerTiming,
} from './service.js';
import { isFiltered, search as sqlSearch, type SqlSearchOptions } from './sql-search.js';
import { clientConfig, connect, ownerConfig, withClient, type StackEnv } from './stack.js';
import { mean, recallAt, round, summarize, type LatencySummary } from './stats.js';

export interface IncrementalQuery {
  literal: string;
  param: Buffer;
}

export interface IncrementalOptions {
  secondRows: number;
  queries: number;
  deleteShare: number;
  limit: number;
  maxDistance: number;
  seed: number;
  sql: SqlSearchOptions;
  /** The service's environment (httpServiceEnv) with the write scope added here. */
  serviceEnv: (secret: string, scopes: string[]) => Record<string, string>;
  witnessRefreshS: number;
  makeQueries: (model: EmbeddingModel, seed: number, count: number) => IncrementalQuery[];
  /** Regenerates the loaded rows (population A) into the bench's in-memory copy. */
  populateA: (table: InMemoryTable) => void;
  waitForReplica: () => Promise<number>;
  repoDir: string;
}

interface SideCase {
  recall: number;
  recallMin: number;
  /** queries that found fewer than half of their exact neighbours */
  missed: number;
  p50Ms: number;
  plans?: Record<string, number>;
  /** `--server-timing`: the median of each of the service's Server-Timing stages, ms */
  serverStages?: Record<string, number>;
}

export interface PhaseResult {
  phase: string;
  queries: number;
  service: Record<string, SideCase>;
  indexAlone: Record<string, SideCase>;
  /** vector_search_escalations_total during the phase, by outcome */
  escalations: Record<string, number>;
}

export interface WriteSide {
  batches: number;
  /** 100 × batches / the time spent in them */
  rowsPerS: number;
  batchMs: LatencySummary;
  /** p50 of the first and last tenth of the batches: how the cost grows with the table */
  firstTenthP50Ms: number;
  lastTenthP50Ms: number;
}

export interface IncrementalReport {
  populationA: number;
  populationB: number;
  /** Sequential batches of 100, alternating: the service's API and the same INSERT bare. */
  insert: { api: WriteSide; rawSql: WriteSide };
  deleted: number;
  vacuumS: number;
  phases: PhaseResult[];
}

type Truth = string[][];

/** Exact answers of every query for every filter case, from the in-memory copy. */
function truthFor(
  table: InMemoryTable,
  queries: IncrementalQuery[],
  o: IncrementalOptions,
  label: string,
): Record<string, Truth> {
  const out: Record<string, Truth> = Object.fromEntries(FILTER_CASES.map((fc) => [fc.name, []]));
  const progress = new Progress(`exact answers, ${label}`, queries.length, 'queries', 10_000);
  queries.forEach((q, i) => {
    const answers = table.topK(
      JSON.parse(q.literal) as number[],
      FILTER_CASES.map((fc) => fc.filters),
      o.limit,
      o.maxDistance,
    );
    FILTER_CASES.forEach((fc, k) => out[fc.name].push(answers[k]));
    progress.update(i + 1);
  });
  progress.done(queries.length);
  return out;
}

function summariseCase(
  recalls: number[],
  ms: number[],
  plans: Record<string, number>,
  stages: Array<Record<string, number>> = [],
): SideCase {
  const serverStages = medianStages(stages);
  return {
    recall: round(mean(recalls), 4),
    recallMin: round(Math.min(...recalls), 4),
    missed: recalls.filter((r) => r < 0.5).length,
    p50Ms: summarize(ms).p50,
    ...(Object.keys(plans).length ? { plans } : {}),
    ...(serverStages ? { serverStages } : {}),
  };
}

/** Runs one phase's queries through the service and as bare SQL on the replica. */
async function measurePhase(
  name: string,
  env: StackEnv,
  http: { port: number; auth: Record<string, string> },
  queries: IncrementalQuery[],
  truth: Record<string, Truth>,
  o: IncrementalOptions,
): Promise<PhaseResult> {
  // a client of its own: a keep-alive socket left idle while the exact answers were
  // computed may have been closed by the server
  const client = new HttpClient('127.0.0.1', http.port, 1);
  const escalationsBefore = await escalations(client);
  const service: Record<string, SideCase> = {};
  const indexAlone: Record<string, SideCase> = {};
  const sqlClient = await connect(clientConfig(env, env.replica));
  try {
    const progress = new Progress(
      name,
      queries.length * FILTER_CASES.length * 2,
      'queries',
      10_000,
    );
    let n = 0;
    for (const fc of FILTER_CASES) {
      const recalls: number[] = [];
      const ms: number[] = [];
      const plans: Record<string, number> = {};
      const stages: Array<Record<string, number>> = [];
      const sqlRecalls: number[] = [];
      const sqlMs: number[] = [];
      for (let i = 0; i < queries.length; i++) {
        const rest = JSON.stringify({
          ...(isFiltered(fc.filters) ? { filters: fc.filters } : {}),
          limit: o.limit,
          maxDistance: o.maxDistance,
        });
        const body = Buffer.from(`{"embedding":${queries[i].literal},${rest.slice(1)}`);
        const t0 = performance.now();
        const res = await client.request('POST', '/v1/recipes/search', body, http.auth);
        ms.push(performance.now() - t0);
        if (res.status !== 200) {
          throw new Error(`search answered ${res.status}: ${res.body.slice(0, 300)}`);
        }
        if (res.headers['server-timing']) {
          stages.push(parseServerTiming(res.headers['server-timing']));
        }
        const answer = JSON.parse(res.body) as { items: Array<{ id: string }>; plan: string };
        plans[answer.plan] = (plans[answer.plan] ?? 0) + 1;
        recalls.push(
          recallAt(
            answer.items.map((h) => h.id),
            truth[fc.name][i],
          ),
        );
        progress.update(++n);
        const s0 = performance.now();
        const raw = await sqlSearch(sqlClient, queries[i].param, fc.filters, o.sql);
        sqlMs.push(performance.now() - s0);
        sqlRecalls.push(
          recallAt(
            raw.hits.map((h) => h.id),
            truth[fc.name][i],
          ),
        );
        progress.update(++n);
      }
      service[fc.name] = summariseCase(recalls, ms, plans, stages);
      indexAlone[fc.name] = summariseCase(sqlRecalls, sqlMs, {});
      log(
        `${name} ${fc.name}: service recall ${service[fc.name].recall} (${service[fc.name].missed} missed), ` +
          `index alone ${indexAlone[fc.name].recall} (${indexAlone[fc.name].missed} missed); ` +
          `p50 ${service[fc.name].p50Ms} against ${indexAlone[fc.name].p50Ms} ms` +
          (service[fc.name].serverStages
            ? `; server stages (median ms) ${JSON.stringify(service[fc.name].serverStages)}`
            : ''),
      );
    }
    progress.done(n);
  } finally {
    await sqlClient.end();
  }
  const escalationsAfter = await escalations(client);
  const delta: Record<string, number> = {};
  for (const k of new Set([...Object.keys(escalationsBefore), ...Object.keys(escalationsAfter)])) {
    delta[k] = (escalationsAfter[k] ?? 0) - (escalationsBefore[k] ?? 0);
  }
  return { phase: name, queries: queries.length, service, indexAlone, escalations: delta };
}

async function escalations(client: HttpClient): Promise<Record<string, number>> {
  const m = parseMetrics((await client.request('GET', '/metrics')).body);
  return {
    'wider-hnsw': metricSum(m, 'vector_search_escalations_total', { outcome: 'wider-hnsw' }),
    exact: metricSum(m, 'vector_search_escalations_total', { outcome: 'exact' }),
    repaired: metricSum(m, 'vector_search_escalations_total', { outcome: 'repaired' }),
  };
}

export async function incrementalStudy(
  env: StackEnv,
  populationA: number,
  modelA: EmbeddingModel,
  o: IncrementalOptions,
): Promise<IncrementalReport> {
  const modelB = new EmbeddingModel({ ...modelA.params, seed: modelA.params.seed ^ 0x7f4a7c15 });
  const table = new InMemoryTable(modelA.params.dims, populationA + o.secondRows);
  o.populateA(table);
  log(`population A regenerated in memory: ${table.size} rows`);
  const secret = randomBytes(24).toString('hex');
  const port = await freePort();
  const service = ServiceProcess.start(
    o.repoDir,
    o.serviceEnv(secret, ['recipes:read', 'recipes:write']),
    port,
  );
  const client = new HttpClient('127.0.0.1', port, 2);
  const auth = { authorization: `Bearer ${secret}` };
  try {
    const bootS = await service.waitReady(client, 120_000);
    log(`service ready on :${port} after ${bootS.toFixed(1)}s`);

    // 1. population B: batches of 100, every other one through POST /v1/recipes/batch and
    // the others as the service's own multi-row INSERT (upsertRecipes) sent straight to the
    // primary: the limit beside the service, as the table grows, in one run (target 4)
    const rng = new Rng(o.seed ^ 0x1b873593);
    const factory = new RecipeFactory(new Rng(o.seed ^ 0x27d4eb2f));
    const v = new Float32Array(modelB.params.dims);
    const apiMs: number[] = [];
    const rawMs: number[] = [];
    const raw = await connect(clientConfig(env, env.primary));
    const rawManager = {
      query: async (sql: string, params: unknown[]) => (await raw.query(sql, params)).rows,
    } as unknown as EntityManager;
    const progress = new Progress('population B (batch API / raw INSERT)', o.secondRows, 'rows');
    try {
      for (let done = 0, b = 0; done < o.secondRows; b++) {
        const items = [];
        for (let i = 0; i < 100 && done + i < o.secondRows; i++) {
          modelB.sample(rng, v);
          const r = factory.next();
          const embedding = Array.from(v, (x) => Number(x.toPrecision(8)));
          table.add(r.id, r, Float32Array.from(embedding));
          items.push({
            id: r.id,
            title: r.title,
            description: r.description,
            ingredients: r.ingredients,
            steps: r.steps,
            cuisine: r.cuisine,
            tags: r.tags,
            dietary: r.dietary,
            totalMinutes: r.totalMinutes,
            embedding,
          });
        }
        if (b % 2 === 1) {
          const s = performance.now();
          await upsertRecipes(rawManager, items);
          rawMs.push(performance.now() - s);
        } else {
          // the request body is the client's work: made before the clock starts
          const body = Buffer.from(JSON.stringify({ items }));
          const s = performance.now();
          const res = await client.request('POST', '/v1/recipes/batch', body, auth);
          apiMs.push(performance.now() - s);
          if (res.status !== 200) {
            throw new Error(
              `POST /v1/recipes/batch answered ${res.status}: ${res.body.slice(0, 300)}`,
            );
          }
        }
        done += items.length;
        progress.update(done);
      }
    } finally {
      await raw.end();
    }
    progress.done(o.secondRows);
    const writes = (ms: number[]): WriteSide => {
      const tenth = Math.max(1, Math.floor(ms.length / 10));
      return {
        batches: ms.length,
        rowsPerS: Math.round((100 * ms.length) / (ms.reduce((a, x) => a + x, 0) / 1000)),
        batchMs: summarize(ms),
        firstTenthP50Ms: summarize(ms.slice(0, tenth)).p50,
        lastTenthP50Ms: summarize(ms.slice(-tenth)).p50,
      };
    };
    const insert = { api: writes(apiMs), rawSql: writes(rawMs) };
    log(
      `batches of 100: API ${insert.api.rowsPerS} rows/s (p50 ${insert.api.batchMs.p50} ms), ` +
        `raw INSERT ${insert.rawSql.rowsPerS} rows/s (p50 ${insert.rawSql.batchMs.p50} ms)`,
    );
    await withClient(clientConfig(env, env.primary), (c) => c.query('ANALYZE recipes'));
    await o.waitForReplica();
    // the service samples its witnesses every VECTOR_WITNESS_REFRESH_S: one interval
    // after the population arrived, some of it is among them
    log(`waiting ${o.witnessRefreshS + 5}s: one witness refresh interval`);
    await sleep((o.witnessRefreshS + 5) * 1000);

    const phases: PhaseResult[] = [];
    const bQueries = o.makeQueries(modelB, o.seed + 11, o.queries);
    const truthB = truthFor(table, bQueries, o, 'population B');
    phases.push(await measurePhase('after population B', env, { port, auth }, bQueries, truthB, o));

    if (o.deleteShare === 0) {
      return {
        populationA,
        populationB: o.secondRows,
        insert,
        deleted: 0,
        vacuumS: 0,
        phases,
      };
    }
    // 2. a mass delete, autovacuum off for the table so "before VACUUM" lasts
    const owner = await connect(ownerConfig(env, env.primary));
    let deleted = 0;
    let vacuumS = 0;
    try {
      await owner.query(`ALTER TABLE recipes SET (autovacuum_enabled = false)`);
      const drop = table.liveIds().filter(() => rng.uniform() < o.deleteShare);
      for (let i = 0; i < drop.length; i += 5_000) {
        const del = await owner.query(`DELETE FROM recipes WHERE id = ANY($1::uuid[])`, [
          drop.slice(i, i + 5_000),
        ]);
        deleted += del.rowCount ?? 0;
      }
      drop.forEach((id) => table.remove(id));
      log(`deleted ${deleted} rows (${(100 * o.deleteShare).toFixed(0)} %)`);
      await o.waitForReplica();
      const mixed = [
        ...o.makeQueries(modelA, o.seed + 12, Math.ceil(o.queries / 2)),
        ...o.makeQueries(modelB, o.seed + 13, Math.floor(o.queries / 2)),
      ];
      const truthD = truthFor(table, mixed, o, 'after the delete');
      phases.push(
        await measurePhase('after delete, before VACUUM', env, { port, auth }, mixed, truthD, o),
      );
      // 3. VACUUM: measured while it runs (rounds until it ends), then after
      const vacuumer = await connect(ownerConfig(env, env.primary));
      const v0 = performance.now();
      let vacuumDone = false;
      const vacuum = vacuumer.query('VACUUM recipes').finally(() => {
        vacuumDone = true;
        vacuumS = (performance.now() - v0) / 1000;
      });
      let pass = 0;
      while (!vacuumDone && pass < 5) {
        pass++;
        phases.push(
          await measurePhase(`during VACUUM #${pass}`, env, { port, auth }, mixed, truthD, o),
        );
      }
      await vacuum;
      await vacuumer.end();
      log(`VACUUM took ${vacuumS.toFixed(1)}s`);
      await o.waitForReplica();
      phases.push(await measurePhase('after VACUUM', env, { port, auth }, mixed, truthD, o));
    } finally {
      await owner.query(`ALTER TABLE recipes RESET (autovacuum_enabled)`).catch(() => undefined);
      await owner.end();
    }
    return {
      populationA,
      populationB: o.secondRows,
      insert,
      deleted,
      vacuumS: round(vacuumS, 1),
      phases,
    };
  } finally {
    await service.stop();
  }
}
