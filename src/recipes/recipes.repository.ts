import { Injectable } from '@nestjs/common';
import pgvector from 'pgvector';
import type { EntityManager } from 'typeorm';
import { paramBinder, queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';
import { HNSW_INDEX } from './recipes.constants.js';

export interface RecipeRow {
  id: string;
  title: string;
  description: string;
  ingredients: string[];
  steps: string[];
  cuisine: string;
  tags: string[];
  dietary: string[];
  totalMinutes: number;
  authorId: string | null;
  hasEmbedding: boolean;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface RecipeInput {
  title: string;
  description?: string;
  ingredients: string[];
  steps: string[];
  cuisine: string;
  tags?: string[];
  dietary?: string[];
  totalMinutes: number;
  authorId?: string | null;
  embedding?: number[];
}

/** What a queued (write-behind) update persists: every column of the recipe, and the embedding when it changed. */
export interface QueuedRecipeChange {
  title: string;
  description: string;
  ingredients: string[];
  steps: string[];
  cuisine: string;
  tags: string[];
  dietary: string[];
  totalMinutes: number;
  authorId: string | null;
  embedding?: number[];
  updatedAt: string;
  /** API key id of the caller who queued it (for the data-change record). */
  actor?: string;
}

export interface SearchFilters {
  cuisine?: string;
  tags?: string[];
  dietary?: string[];
  maxTotalMinutes?: number;
  authorId?: string;
}

export interface VectorQuery {
  embedding: number[];
  filters: SearchFilters;
  excludeId?: string;
  limit: number;
  maxDistance: number;
}

export interface SearchTuning {
  efSearch: number;
  maxScanTuples: number;
  exactMaxRows: number;
  timeoutMs: number;
}

export interface SearchHitRow {
  id: string;
  title: string;
  cuisine: string;
  tags: string[];
  dietary: string[];
  totalMinutes: number;
  authorId: string | null;
  distance: number;
}

export type SearchPlan = 'hnsw' | 'exact';

export interface SearchResult {
  plan: SearchPlan;
  /** Rows the nearest-neighbour query returned before the distance cut-off. */
  candidates: number;
  hits: SearchHitRow[];
}

export interface ListQuery {
  cuisine?: string;
  tag?: string;
  dietary?: string;
  authorId?: string;
  maxTotalMinutes?: number;
  limit: number;
  after?: { createdAt: string; id: string };
}

const COLUMNS = `id::text AS id, title, description, ingredients, steps, cuisine, tags, dietary,
  total_minutes AS "totalMinutes", author_id::text AS "authorId", embedding IS NOT NULL AS "hasEmbedding",
  version, created_at AS "createdAt", updated_at AS "updatedAt"`;

const HIT_COLUMNS = `id::text AS id, title, cuisine, tags, dietary, total_minutes AS "totalMinutes",
  author_id::text AS "authorId"`;

/** Builds a WHERE clause of bound parameters, appending its values to `params`. */
function whereClause(filters: SearchFilters, params: unknown[], excludeId?: string): string {
  const clauses = ['embedding IS NOT NULL'];
  const { bind } = paramBinder(params);
  if (filters.cuisine !== undefined) {
    clauses.push(`cuisine = ${bind(filters.cuisine)}`);
  }
  if (filters.tags?.length) {
    clauses.push(`tags @> ${bind(filters.tags)}::text[]`);
  }
  if (filters.dietary?.length) {
    clauses.push(`dietary @> ${bind(filters.dietary)}::text[]`);
  }
  if (filters.maxTotalMinutes !== undefined) {
    clauses.push(`total_minutes <= ${bind(filters.maxTotalMinutes)}`);
  }
  if (filters.authorId !== undefined) {
    clauses.push(`author_id = ${bind(filters.authorId)}::uuid`);
  }
  if (excludeId !== undefined) {
    clauses.push(`id <> ${bind(excludeId)}::uuid`);
  }
  return clauses.join(' AND ');
}

function hasFilters(f: SearchFilters): boolean {
  return (
    f.cuisine !== undefined ||
    !!f.tags?.length ||
    !!f.dietary?.length ||
    f.maxTotalMinutes !== undefined ||
    f.authorId !== undefined
  );
}

/** `SET LOCAL` of several settings in one round trip, values bound. */
async function setLocal(
  m: EntityManager,
  settings: Record<string, string | number>,
): Promise<void> {
  const names = Object.keys(settings);
  const sql = `SELECT ${names.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, true)`).join(', ')}`;
  await m.query(
    sql,
    names.flatMap((n) => [n, String(settings[n])]),
  );
}

/**
 * Upserts up to BATCH_SIZE recipes in ONE multi-row statement (one round trip);
 * an existing id is updated and its version bumped, so replays are idempotent.
 */
export async function upsertRecipes(
  m: EntityManager,
  items: Array<RecipeInput & { id?: string }>,
): Promise<string[]> {
  const params: unknown[] = [];
  const { bind } = paramBinder(params);
  const values = items.map(
    (r) =>
      `(COALESCE(${bind(r.id ?? null)}::uuid, gen_random_uuid()), ${bind(r.title)}, ${bind(r.description ?? '')}, ` +
      `${bind(r.ingredients)}::text[], ${bind(r.steps)}::text[], ${bind(r.cuisine)}, ${bind(r.tags ?? [])}::text[], ` +
      `${bind(r.dietary ?? [])}::text[], ${bind(r.totalMinutes)}::int, ${bind(r.authorId ?? null)}::uuid, ` +
      `${bind(r.embedding ? pgvector.toSql(r.embedding) : null)}::vector)`,
  );
  const rows: Array<{ id: string }> = await m.query(
    `INSERT INTO recipes (id, title, description, ingredients, steps, cuisine, tags, dietary, total_minutes, author_id, embedding)
     VALUES ${values.join(', ')}
     ON CONFLICT (id) DO UPDATE SET
       title = EXCLUDED.title, description = EXCLUDED.description, ingredients = EXCLUDED.ingredients,
       steps = EXCLUDED.steps, cuisine = EXCLUDED.cuisine, tags = EXCLUDED.tags, dietary = EXCLUDED.dietary,
       total_minutes = EXCLUDED.total_minutes, author_id = EXCLUDED.author_id,
       embedding = COALESCE(EXCLUDED.embedding, recipes.embedding),
       version = recipes.version + 1, updated_at = now()
     RETURNING id::text AS id`,
    params,
  );
  return rows.map((r) => r.id);
}

/** Recipes aggregate: every SQL statement about recipes lives here. */
@Injectable()
export class RecipesRepository {
  constructor(private readonly router: ReadRouterService) {}

  async create(m: EntityManager, input: RecipeInput): Promise<RecipeRow> {
    const rows: RecipeRow[] = await m.query(
      `INSERT INTO recipes (title, description, ingredients, steps, cuisine, tags, dietary, total_minutes, author_id, embedding)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::vector)
       RETURNING ${COLUMNS}`,
      [
        input.title,
        input.description ?? '',
        input.ingredients,
        input.steps,
        input.cuisine,
        input.tags ?? [],
        input.dietary ?? [],
        input.totalMinutes,
        input.authorId ?? null,
        input.embedding ? pgvector.toSql(input.embedding) : null,
      ],
    );
    return rows[0];
  }

  getById(id: string): Promise<RecipeRow | null> {
    return this.router.read(async (m) => {
      const rows: RecipeRow[] = await m.query(`SELECT ${COLUMNS} FROM recipes WHERE id = $1`, [id]);
      return rows[0] ?? null;
    });
  }

  /** On the writer, inside the caller's transaction (version checks must not read a replica). */
  async getVersionForUpdate(m: EntityManager, id: string): Promise<number | null> {
    const rows: Array<{ version: number }> = await m.query(
      `SELECT version FROM recipes WHERE id = $1 FOR UPDATE`,
      [id],
    );
    return rows[0]?.version ?? null;
  }

  async update(m: EntityManager, id: string, patch: Partial<RecipeInput>): Promise<RecipeRow> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const { bind } = paramBinder(params);
    const columns: Array<[keyof RecipeInput, string, string?]> = [
      ['title', 'title'],
      ['description', 'description'],
      ['ingredients', 'ingredients'],
      ['steps', 'steps'],
      ['cuisine', 'cuisine'],
      ['tags', 'tags'],
      ['dietary', 'dietary'],
      ['totalMinutes', 'total_minutes'],
      ['authorId', 'author_id', '::uuid'],
    ];
    for (const [key, column, cast] of columns) {
      if (patch[key] !== undefined) {
        sets.push(`${column} = ${bind(patch[key], cast)}`);
      }
    }
    if (patch.embedding !== undefined) {
      sets.push(`embedding = ${bind(pgvector.toSql(patch.embedding), '::vector')}`);
    }
    sets.push('version = version + 1', 'updated_at = now()');
    const rows = await queryRows<RecipeRow>(
      m,
      `UPDATE recipes SET ${sets.join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`,
      params,
    );
    return rows[0];
  }

  /**
   * Persists a queued change as version `version`; a replay, or a change older than
   * what is stored, updates nothing. False when the recipe no longer exists or is newer.
   */
  async applyQueuedChange(
    m: EntityManager,
    id: string,
    version: number,
    c: QueuedRecipeChange,
  ): Promise<boolean> {
    const rows = await queryRows<{ id: string }>(
      m,
      `UPDATE recipes SET title = $3, description = $4, ingredients = $5, steps = $6, cuisine = $7, tags = $8,
              dietary = $9, total_minutes = $10, author_id = $11::uuid,
              embedding = COALESCE($12::vector, embedding), version = $2, updated_at = $13::timestamptz
        WHERE id = $1 AND version < $2
        RETURNING id::text AS id`,
      [
        id,
        version,
        c.title,
        c.description,
        c.ingredients,
        c.steps,
        c.cuisine,
        c.tags,
        c.dietary,
        c.totalMinutes,
        c.authorId,
        c.embedding ? pgvector.toSql(c.embedding) : null,
        c.updatedAt,
      ],
    );
    return rows.length > 0;
  }

  /** The current row on the writer (no replica lag): the base of a queued change. */
  async getOnWriter(m: EntityManager, id: string): Promise<RecipeRow | null> {
    const rows: RecipeRow[] = await m.query(`SELECT ${COLUMNS} FROM recipes WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async delete(m: EntityManager, id: string): Promise<boolean> {
    const rows = await queryRows<{ id: string }>(
      m,
      `DELETE FROM recipes WHERE id = $1 RETURNING id`,
      [id],
    );
    return rows.length > 0;
  }

  /** A user's recipes in the caller's transaction (export). */
  authoredBy(m: EntityManager, authorId: string): Promise<RecipeRow[]> {
    return m.query(`SELECT ${COLUMNS} FROM recipes WHERE author_id = $1 ORDER BY created_at, id`, [
      authorId,
    ]);
  }

  /** Deletes a user's recipes (erasure); returns their ids. */
  async deleteByAuthor(m: EntityManager, authorId: string): Promise<string[]> {
    const rows = await queryRows<{ id: string }>(
      m,
      `DELETE FROM recipes WHERE author_id = $1 RETURNING id::text AS id`,
      [authorId],
    );
    return rows.map((r) => r.id);
  }

  /** Upserts up to BATCH_SIZE recipes in one statement (see `upsertRecipes`). */
  upsertBatch(m: EntityManager, items: Array<RecipeInput & { id?: string }>): Promise<string[]> {
    return upsertRecipes(m, items);
  }

  list(q: ListQuery): Promise<Array<RecipeRow & { cursorAt: string }>> {
    return this.router.read(async (m) => {
      const params: unknown[] = [];
      const { bind } = paramBinder(params);
      const clauses: string[] = [];
      if (q.cuisine !== undefined) {
        clauses.push(`cuisine = ${bind(q.cuisine)}`);
      }
      if (q.tag !== undefined) {
        clauses.push(`tags @> ARRAY[${bind(q.tag)}]::text[]`);
      }
      if (q.dietary !== undefined) {
        clauses.push(`dietary @> ARRAY[${bind(q.dietary)}]::text[]`);
      }
      if (q.authorId !== undefined) {
        clauses.push(`author_id = ${bind(q.authorId)}::uuid`);
      }
      if (q.maxTotalMinutes !== undefined) {
        clauses.push(`total_minutes <= ${bind(q.maxTotalMinutes)}`);
      }
      if (q.after) {
        clauses.push(
          `(created_at, id) < (${bind(q.after.createdAt)}::timestamptz, ${bind(q.after.id)}::uuid)`,
        );
      }
      const where = clauses.length ? `WHERE ${clauses.join(' AND ')}` : '';
      return m.query(
        `SELECT ${COLUMNS}, created_at::text AS "cursorAt" FROM recipes ${where}
          ORDER BY created_at DESC, id DESC LIMIT ${bind(q.limit)}`,
        params,
      );
    });
  }

  getEmbedding(id: string): Promise<{ found: boolean; embedding: number[] | null }> {
    return this.router.read(async (m) => {
      const rows: Array<{ embedding: string | null }> = await m.query(
        `SELECT embedding::text AS embedding FROM recipes WHERE id = $1`,
        [id],
      );
      if (rows.length === 0) {
        return { found: false, embedding: null };
      }
      return {
        found: true,
        embedding: rows[0].embedding ? (pgvector.fromSql(rows[0].embedding) as number[]) : null,
      };
    });
  }

  /**
   * Nearest recipes by cosine distance, filters in the same SQL, on a read node.
   * Very selective filters (≤ exactMaxRows matching rows) get an exact scan of the
   * filtered rows (recall 1.0, fast at that size); broader ones use the HNSW index with
   * iterative scans so a filtered query still returns `limit` rows.
   */
  search(q: VectorQuery, tuning: SearchTuning): Promise<SearchResult> {
    return this.router.readTransaction(async (m) => {
      const params: unknown[] = [pgvector.toSql(q.embedding)];
      const where = whereClause(q.filters, params, q.excludeId);
      let plan: SearchPlan = 'hnsw';
      if (hasFilters(q.filters) && tuning.exactMaxRows > 0) {
        // Bounded count: stops at exactMaxRows + 1 matching rows, so it stays cheap.
        const countParams: unknown[] = [];
        const countWhere = whereClause(q.filters, countParams, q.excludeId);
        countParams.push(tuning.exactMaxRows + 1);
        const rows: Array<{ n: number }> = await m.query(
          `SELECT count(*)::int AS n FROM (SELECT 1 FROM recipes WHERE ${countWhere} LIMIT $${countParams.length}) s`,
          countParams,
        );
        if (rows[0].n <= tuning.exactMaxRows) {
          plan = 'exact';
        }
      }
      const settings: Record<string, string | number> = { statement_timeout: tuning.timeoutMs };
      if (plan === 'exact') {
        settings.enable_indexscan = 'off';
      } else {
        settings['hnsw.ef_search'] = tuning.efSearch;
        if (hasFilters(q.filters) || q.excludeId) {
          settings['hnsw.iterative_scan'] = 'relaxed_order';
          settings['hnsw.max_scan_tuples'] = tuning.maxScanTuples;
          settings.enable_seqscan = 'off';
          settings.enable_bitmapscan = 'off';
        }
      }
      await setLocal(m, settings);
      params.push(q.limit);
      const limitParam = `$${params.length}`;
      // Relaxed order returns nearly sorted rows: materialise, then restore strict order.
      const rows: Array<SearchHitRow & { distance: number }> = await m.query(
        `WITH nearest AS MATERIALIZED (
           SELECT ${HIT_COLUMNS}, embedding <=> $1::vector AS distance
             FROM recipes WHERE ${where} ORDER BY distance LIMIT ${limitParam})
         SELECT * FROM nearest ORDER BY distance`,
        params,
      );
      const hits = rows.filter((r) => r.distance <= q.maxDistance);
      return { plan, candidates: rows.length, hits };
    });
  }

  /**
   * Exact nearest neighbours (no ANN index): the ground truth for recall sampling. It
   * reads every matching vector, so it runs on the writer: on a replica it would push
   * the HNSW index out of the buffers that serve the searches.
   */
  exactIds(q: VectorQuery, timeoutMs: number): Promise<string[]> {
    return this.router.readTransaction(
      async (m) => {
        const params: unknown[] = [pgvector.toSql(q.embedding)];
        const where = whereClause(q.filters, params, q.excludeId);
        // One core: the check runs beside live traffic.
        await setLocal(m, {
          statement_timeout: timeoutMs,
          enable_indexscan: 'off',
          max_parallel_workers_per_gather: 0,
        });
        params.push(q.limit);
        const rows: Array<{ id: string; distance: number }> = await m.query(
          `SELECT id::text AS id, embedding <=> $1::vector AS distance FROM recipes WHERE ${where}
          ORDER BY distance LIMIT $${params.length}`,
          params,
        );
        return rows.filter((r) => r.distance <= q.maxDistance).map((r) => r.id);
      },
      { onWriter: true },
    );
  }

  /** EXPLAIN (ANALYZE, BUFFERS) of the search `search()` would run, with the same settings. */
  explain(q: VectorQuery, tuning: SearchTuning): Promise<unknown> {
    return this.router.readTransaction(async (m) => {
      const params: unknown[] = [pgvector.toSql(q.embedding)];
      const where = whereClause(q.filters, params, q.excludeId);
      const settings: Record<string, string | number> = {
        statement_timeout: tuning.timeoutMs,
        'hnsw.ef_search': tuning.efSearch,
      };
      if (hasFilters(q.filters)) {
        settings['hnsw.iterative_scan'] = 'relaxed_order';
        settings['hnsw.max_scan_tuples'] = tuning.maxScanTuples;
        settings.enable_seqscan = 'off';
        settings.enable_bitmapscan = 'off';
      }
      await setLocal(m, settings);
      params.push(q.limit);
      const rows: Array<{ 'QUERY PLAN': unknown }> = await m.query(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
         SELECT id, embedding <=> $1::vector AS distance FROM recipes WHERE ${where}
          ORDER BY distance LIMIT $${params.length}`,
        params,
      );
      return rows[0]['QUERY PLAN'];
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

  indexSizeBytes(): Promise<number | null> {
    return this.router.read(async (m) => {
      const rows: Array<{ size: string | null }> = await m.query(
        `SELECT pg_relation_size(to_regclass($1))::text AS size`,
        [HNSW_INDEX],
      );
      return rows[0]?.size === null || rows[0]?.size === undefined ? null : Number(rows[0].size);
    });
  }
}
