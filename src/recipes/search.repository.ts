import { Injectable } from '@nestjs/common';
import pgvector from 'pgvector';
import { vectorFromBinary, vectorParam } from './vector-param.js';
import {
  StratumColumn,
  stratumKey,
  unitVector,
  Witness,
  WitnessProbe,
  WitnessSet,
} from './witness-set.js';
import { ReadBatch, ReadRouterService } from '../database/read-router.service.js';
import { QUERY_CANCELED } from '../database/node-errors.js';
import { RequestContextStore } from '../common/request-context.js';
import { storageOfDefinition, type VectorStorage } from './vector-storage.js';
import {
  exactSettings,
  hasFilters,
  HIT_COLUMNS,
  matchCountStatement,
  nearestStatement,
  planSettings,
  rowsByIdStatement,
  SearchHitRow,
  SearchPlan,
  SearchResult,
  SearchTuning,
  VectorQuery,
} from './search-plan.js';

/** The witnesses that will check an HNSW answer to `q`, or null when there are none. */
function probeWitnesses(q: VectorQuery, witnesses?: WitnessSet): WitnessProbe | null {
  if (!witnesses || witnesses.size === 0) {
    return null;
  }
  const unit = unitVector(q.embedding);
  return unit ? witnesses.probe(unit, q.filters, q.maxDistance, q.excludeId) : null;
}

/** Plan choices remembered at most; past it the memory starts afresh. */
const PLAN_MEMORY_ENTRIES = 10_000;

/** Result rows of a hit statement, distances as numbers. */
function hitRows(rows: unknown[]): SearchHitRow[] {
  return (rows as SearchHitRow[]).map((r) => ({ ...r, distance: Number(r.distance) }));
}

export interface HnswIndexInfo {
  name: string;
  /** null: an HNSW index that is not on the embedding with cosine distance */
  storage: VectorStorage | null;
  sizeBytes: number;
}

/** EXPLAIN (FORMAT JSON) output: one element with the plan tree and timings. */
export type ExplainOutput = Array<{
  Plan: { 'Actual Rows'?: number; [key: string]: unknown };
  'Planning Time': number;
  'Execution Time': number;
}>;

/**
 * The SQL of vector search: the choice between an exact scan and the HNSW index, the
 * planner settings that go with it, the exact ground truth, and EXPLAIN.
 */
@Injectable()
export class SearchRepository {
  /** Exact escalations running on this instance (see `verified`). */
  private exactEscalations = 0;
  /**
   * What the HNSW index holds, so that index plans order by the distance the index
   * has (any other expression cannot use it): kept current by VectorIndexService from
   * the index's definition, whatever VECTOR_STORAGE says until a rebuild converts it.
   */
  indexStorage: VectorStorage = 'vector';
  /**
   * Plan choices by filter set, each kept `planMemoryMs`: the bounded count is a round
   * trip before every filtered search, and what it decides changes slowly. Either plan
   * answers correctly whatever the count is by now: an exact plan scans what matches,
   * and an index plan that comes back short is answered exactly (`search`).
   */
  private readonly planMemory = new Map<string, { plan: SearchPlan; until: number }>();

  constructor(private readonly router: ReadRouterService) {}

  /**
   * Nearest recipes by cosine distance within `maxDistance`, filters in the same SQL,
   * on a read node. Very selective filters (≤ exactMaxRows matching rows) get an exact
   * scan of the filtered rows (recall 1.0, fast at that size); the rest use the HNSW
   * index with iterative scans. A short answer means there are no more rows: when the
   * index scan ends before `limit` rows (max_scan_tuples, its memory bound, or a part
   * of the graph it cannot reach), an exact scan of the same query answers instead.
   */
  search(q: VectorQuery, tuning: SearchTuning, witnesses?: WitnessSet): Promise<SearchResult> {
    // the embedding in pgvector's binary form, once for every statement of the search
    const vector = vectorParam(q.embedding);
    return this.router.readBatches(async (batch) => {
      const chosen = await this.choosePlan(batch, q, tuning);
      const answer = this.nearest(batch, q, vector, tuning, chosen);
      // while the database answers: the witnesses an index answer must not have skipped
      const probeStarted = performance.now();
      const probe = chosen === 'hnsw' ? probeWitnesses(q, witnesses) : null;
      RequestContextStore.addTiming('witness', performance.now() - probeStarted);
      let hits = await answer;
      if (chosen === 'exact') {
        return { plan: chosen, exactFallback: false, hits };
      }
      if (hits.length >= q.limit) {
        return this.verified(batch, q, vector, tuning, hits, probe);
      }
      hits = await this.nearest(batch, q, vector, tuning, 'exact');
      return { plan: 'exact', exactFallback: true, hits };
    });
  }

  /**
   * A full HNSW answer checked against the witnesses (WitnessSet): returned as it is
   * when none contradicts it. Otherwise, in the same read batch:
   * 1. the HNSW query again with `escalationEfSearch`: returned if no witness
   *    contradicts it (`wider-hnsw`);
   * 2. the exact scan, at most `escalationExactConcurrency` at once per instance (an
   *    unfiltered exact scan reads every embedding: about 2.5 s at 100,000 rows on 2
   *    cores; more at once would take the CPU the searches need): returned (`exact`);
   * 3. when another exact escalation is running, or this one hits the statement
   *    timeout: the wider answer repaired with the contradicting witnesses, read again
   *    from the table under the same filters and bound (so a deleted or changed row
   *    cannot come back), merged in by distance (`repaired`). Better than the first
   *    answer, not proven complete.
   * Witnesses an exact or repaired answer contradicts (gone or changed since the
   * sample) leave the set.
   */
  private async verified(
    batch: ReadBatch,
    q: VectorQuery,
    vector: Buffer,
    tuning: SearchTuning,
    hits: SearchHitRow[],
    probe: WitnessProbe | null,
  ): Promise<SearchResult> {
    if (!probe) {
      return { plan: 'hnsw', exactFallback: false, hits };
    }
    const check = (answer: SearchHitRow[]) => probe.contradiction(answer, q.limit);
    const first = check(hits);
    if (!first) {
      return { plan: 'hnsw', exactFallback: false, hits };
    }
    let best = hits;
    const wider = { ...tuning, efSearch: Math.max(tuning.efSearch, tuning.escalationEfSearch) };
    if (wider.efSearch > tuning.efSearch) {
      const retried = await this.nearest(batch, q, vector, wider, 'hnsw');
      if (retried.length >= q.limit && !check(retried)) {
        return {
          plan: 'hnsw',
          exactFallback: false,
          hits: retried,
          escalation: { ...first, outcome: 'wider-hnsw' },
        };
      }
      if (retried.length >= q.limit) {
        best = retried;
      }
    }
    const forgetStale = (answer: SearchHitRow[]) => probe.forgetContradicting(answer, q.limit);
    if (this.exactEscalations < tuning.escalationExactConcurrency) {
      this.exactEscalations++;
      try {
        const exact = await this.nearest(batch, q, vector, tuning, 'exact');
        forgetStale(exact);
        return {
          plan: 'exact',
          exactFallback: false,
          hits: exact,
          escalation: { ...first, outcome: 'exact' },
        };
      } catch (err) {
        if ((err as { code?: string }).code !== QUERY_CANCELED) {
          throw err;
        }
      } finally {
        this.exactEscalations--;
      }
    }
    const ids = probe.contradictingIds(best, q.limit);
    const found = ids.length > 0 ? await this.rowsByIds(batch, q, vector, tuning, ids) : [];
    const seen = new Set(best.map((h) => h.id));
    const repaired = [...best, ...found.filter((h) => !seen.has(h.id))]
      .sort((a, b) => a.distance - b.distance)
      .slice(0, q.limit);
    forgetStale(repaired);
    return {
      plan: 'hnsw',
      exactFallback: false,
      hits: repaired,
      escalation: { ...first, outcome: 'repaired' },
    };
  }

  /** The rows `ids` that pass the query's filters and bound, with their distances. */
  private async rowsByIds(
    batch: ReadBatch,
    q: VectorQuery,
    vector: Buffer,
    tuning: SearchTuning,
    ids: string[],
  ): Promise<SearchHitRow[]> {
    const statement = rowsByIdStatement(q, vector, ids);
    const [rows] = await batch([statement], { statement_timeout: tuning.timeoutMs });
    return hitRows(rows);
  }

  /** Exact scan when the filters match at most `exactMaxRows` rows (a bounded count). */
  private async choosePlan(
    batch: ReadBatch,
    q: VectorQuery,
    tuning: SearchTuning,
  ): Promise<SearchPlan> {
    if (!hasFilters(q.filters) || tuning.exactMaxRows <= 0) {
      return 'hnsw';
    }
    const memoryMs = tuning.planMemoryMs ?? 0;
    const key = `${tuning.exactMaxRows} ${JSON.stringify(q.filters)}`;
    const now = Date.now();
    const known = memoryMs > 0 ? this.planMemory.get(key) : undefined;
    if (known && known.until > now) {
      return known.plan;
    }
    const count = matchCountStatement(q, tuning.exactMaxRows);
    const [rows] = await batch([count], { statement_timeout: tuning.timeoutMs });
    const plan: SearchPlan = Number(rows[0].n) <= tuning.exactMaxRows ? 'exact' : 'hnsw';
    if (memoryMs > 0) {
      if (this.planMemory.size >= PLAN_MEMORY_ENTRIES) {
        this.planMemory.clear();
      }
      this.planMemory.set(key, { plan, until: now + memoryMs });
    }
    return plan;
  }

  /** Index plans choose rows by the index's distance; exact plans by the full one. */
  private storageFor(plan: SearchPlan): VectorStorage {
    return plan === 'exact' ? 'vector' : this.indexStorage;
  }

  /** The plan's settings and the query: one round trip. */
  private async nearest(
    batch: ReadBatch,
    q: VectorQuery,
    vector: Buffer,
    tuning: SearchTuning,
    plan: SearchPlan,
  ): Promise<SearchHitRow[]> {
    const statement = nearestStatement(q, vector, HIT_COLUMNS, this.storageFor(plan));
    const [rows] = await batch([statement], planSettings(plan, tuning));
    return hitRows(rows);
  }

  /**
   * Exact nearest neighbours (no ANN index): the ground truth for recall sampling. It
   * reads every matching vector, so it runs on the writer: on a replica it would push
   * the HNSW index out of the buffers that serve the searches.
   */
  exactIds(q: VectorQuery, timeoutMs: number): Promise<string[]> {
    return this.router.readBatches(
      async (batch) => {
        const statement = nearestStatement(q, vectorParam(q.embedding), 'id::text AS id');
        // One core: the check runs beside live traffic.
        const [rows] = await batch([statement], {
          ...exactSettings(timeoutMs),
          max_parallel_workers_per_gather: 0,
        });
        return rows.map((r) => String(r.id));
      },
      { onWriter: true },
    );
  }

  /**
   * EXPLAIN (ANALYZE, BUFFERS) of what `search()` runs for `q`, with the same settings
   * and batches: the chosen plan, and the exact scan after it when the index scan
   * came back short. `plan` is what the search would report.
   */
  explain(
    q: VectorQuery,
    tuning: SearchTuning,
  ): Promise<{ plan: SearchPlan; exactFallback: boolean; explained: ExplainOutput }> {
    return this.router.readBatches(async (batch) => {
      const run = async (plan: SearchPlan): Promise<ExplainOutput> => {
        const statement = nearestStatement(
          q,
          vectorParam(q.embedding),
          HIT_COLUMNS,
          this.storageFor(plan),
        );
        const [rows] = await batch(
          [
            {
              sql: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement.sql}`,
              params: statement.params,
            },
          ],
          planSettings(plan, tuning),
        );
        return rows[0]['QUERY PLAN'] as ExplainOutput;
      };
      const chosen = await this.choosePlan(batch, q, tuning);
      const explained = await run(chosen);
      const returned = explained[0]?.Plan?.['Actual Rows'] ?? 0;
      if (chosen === 'exact' || returned >= q.limit) {
        return { plan: chosen, exactFallback: false, explained };
      }
      return { plan: 'exact', exactFallback: true, explained: await run('exact') };
    });
  }

  /**
   * About `n` random recipes with embeddings for the WitnessSet, and up to
   * `strata.count` strata of `strata.rows` recipes each among the rows holding one
   * frequent filter value: whole pages sampled (TABLESAMPLE SYSTEM) from a large table,
   * every row of a small one. Embeddings come in pgvector's binary form (vector_send),
   * not as 1,536 decimal numbers each. Two round trips: the table's size and ANALYZE's
   * most common values, then every sample at once.
   */
  sampleWitnesses(n: number, strata: StrataPlan = NO_STRATA): Promise<WitnessSample> {
    return this.router.readBatches(async (batch) => {
      const [stats, common] = await batch([
        {
          sql: `SELECT greatest(reltuples, 0)::float8 AS rows, relpages::float8 AS pages
                  FROM pg_class WHERE oid = 'recipes'::regclass`,
        },
        // ANALYZE's most common values: which filter values are frequent enough to be
        // searched through the index (the rarer ones get exact scans)
        {
          sql: `SELECT attname AS column,
                       CASE WHEN attname = 'cuisine' THEN most_common_vals::text::text[]
                            ELSE most_common_elems::text::text[] END AS vals,
                       CASE WHEN attname = 'cuisine' THEN most_common_freqs
                            ELSE most_common_elem_freqs END AS freqs
                  FROM pg_stats
                 WHERE schemaname = current_schema() AND tablename = 'recipes'
                   AND attname IN ('cuisine', 'tags', 'dietary')`,
        },
      ]);
      const rows = Number(stats[0]?.rows ?? 0);
      const pages = Number(stats[0]?.pages ?? 0);
      const chosen = chooseStrata(common as unknown as ColumnStats[], rows, n, strata);
      const statements = [
        witnessStatement(n, rows, pages, null),
        ...chosen.map((c) => witnessStatement(strata.rows, c.rows, pages, c)),
      ];
      const [sampled, ...perStratum] = await batch(statements);
      const out = new Map<string, Witness[]>();
      chosen.forEach((c, i) => out.set(stratumKey(c.column, c.value), witnessRows(perStratum[i])));
      return { rows: witnessRows(sampled), strata: out };
    });
  }

  /** Any stored embedding, for representative EXPLAINs. */
  sampleEmbedding(): Promise<number[] | null> {
    return this.router.read(async (m) => {
      const rows: Array<{ embedding: string }> = await m.query(
        `SELECT embedding::text AS embedding FROM recipes WHERE embedding IS NOT NULL LIMIT 1`,
      );
      return rows[0] ? (pgvector.fromSql(rows[0].embedding) as number[]) : null;
    });
  }

  /** The valid HNSW indexes on recipes (normally one; two while VECTOR_STORAGE is switched). */
  hnswIndexes(): Promise<HnswIndexInfo[]> {
    return this.router.read(async (m) => {
      const rows: Array<{ name: string; definition: string; size: string }> = await m.query(
        `SELECT c.relname AS name, pg_get_indexdef(c.oid) AS definition,
                pg_relation_size(c.oid)::text AS size
           FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_am a ON a.oid = c.relam
          WHERE i.indrelid = 'recipes'::regclass AND a.amname = 'hnsw' AND i.indisvalid
          ORDER BY c.relname`,
      );
      return rows.map((r) => ({
        name: r.name,
        storage: storageOfDefinition(r.definition),
        sizeBytes: Number(r.size),
      }));
    });
  }
}

/** What the witness strata may be: how many, of how many rows, above which value count. */
export interface StrataPlan {
  count: number;
  rows: number;
  /** A value held by at most this many rows is searched exactly: no stratum. */
  exactMaxRows: number;
}

const NO_STRATA: StrataPlan = { count: 0, rows: 0, exactMaxRows: 0 };

export interface WitnessSample {
  rows: Witness[];
  strata: Map<string, Witness[]>;
}

/** A row of pg_stats for a filter column (common values or, for arrays, elements). */
interface ColumnStats {
  column: StratumColumn;
  vals: string[] | null;
  freqs: number[] | null;
}

/** A frequent filter value and how many rows hold it (by ANALYZE's frequency). */
interface Stratum {
  column: StratumColumn;
  value: string;
  rows: number;
}

/**
 * The filter values worth witnesses of their own: held by more rows than an exact scan
 * takes (the rest are searched exactly), and by too few for the table-wide sample of `n`
 * to hold half a stratum of them. The most frequent first, at most `plan.count`.
 */
export function chooseStrata(
  stats: readonly ColumnStats[],
  tableRows: number,
  n: number,
  plan: StrataPlan,
): Stratum[] {
  if (plan.count <= 0 || tableRows <= 0) {
    return [];
  }
  const out: Stratum[] = [];
  for (const s of stats) {
    const vals = s.vals ?? [];
    const freqs = s.freqs ?? [];
    // for arrays, most_common_elem_freqs ends with three more numbers (min, max, nulls)
    for (let i = 0; i < vals.length && i < freqs.length; i++) {
      const share = Number(freqs[i]);
      const rows = share * tableRows;
      if (rows > plan.exactMaxRows && share * n < plan.rows / 2) {
        out.push({ column: s.column, value: vals[i], rows });
      }
    }
  }
  return out.sort((a, b) => b.rows - a.rows).slice(0, plan.count);
}

/** Fewer pages than this in a sample make it lumpy (whole pages of like rows): read more. */
const MIN_SAMPLED_PAGES = 64;

/**
 * The sampling statement: `n` random rows of the table (`rows` rows on `pages` pages),
 * or of one stratum's rows (`rows` of them).
 */
function witnessStatement(
  n: number,
  rows: number,
  pages: number,
  stratum: Stratum | null,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [n];
  // twice the share asked for: pages hold fewer rows than the estimate, some lack embeddings
  const share = rows > 0 ? (200 * n) / rows : 100;
  const percent = Math.min(
    100,
    Math.max(share, pages > 0 ? (100 * MIN_SAMPLED_PAGES) / pages : 100),
  );
  let from = 'recipes';
  if (percent < 100) {
    params.push(percent);
    from = `recipes TABLESAMPLE SYSTEM ($${params.length}::float4)`;
  }
  let where = 'embedding IS NOT NULL';
  if (stratum) {
    params.push(stratum.value);
    where +=
      stratum.column === 'cuisine'
        ? ` AND cuisine = $${params.length}::text`
        : ` AND ${stratum.column} @> ARRAY[$${params.length}::text]`;
  }
  return {
    sql: `SELECT id::text AS id, vector_send(embedding) AS embedding, cuisine, tags, dietary,
                 total_minutes AS "totalMinutes", author_id::text AS "authorId"
            FROM ${from} WHERE ${where} ORDER BY random() LIMIT $1::int`,
    params,
  };
}

/** Sampled rows as witnesses (zero vectors have no direction: left out). */
function witnessRows(sampled: ReadonlyArray<Record<string, unknown>>): Witness[] {
  const out: Witness[] = [];
  for (const r of sampled) {
    const unit = unitVector(vectorFromBinary(r.embedding as Buffer));
    if (unit) {
      out.push({
        id: String(r.id),
        unit,
        cuisine: String(r.cuisine),
        tags: (r.tags as string[] | null) ?? [],
        dietary: (r.dietary as string[] | null) ?? [],
        totalMinutes: Number(r.totalMinutes),
        authorId: (r.authorId as string | null) ?? null,
      });
    }
  }
  return out;
}
