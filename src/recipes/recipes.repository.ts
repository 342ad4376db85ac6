import { Injectable } from '@nestjs/common';
import pgvector from 'pgvector';
import { vectorParam } from './vector-param.js';
import type { EntityManager } from 'typeorm';
import { paramBinder, queryRows } from '../database/query-rows.js';
import { ReadRouterService } from '../database/read-router.service.js';

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
      // pgvector's binary form: 100 embeddings are not formatted and parsed as text
      `${bind(r.embedding ? vectorParam(r.embedding) : null)}::vector)`,
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

/** Recipes aggregate: the SQL of recipe rows (vector search SQL: search.repository.ts). */
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
}
