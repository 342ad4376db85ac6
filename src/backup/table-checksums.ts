/**
 * The one definition of a table's content checksum, shared by the manifest written at
 * backup time and by validation: for every table of schema `public` (partitioned parents
 * counted once, their partitions through them) except `typeorm_migrations`, the row count
 * and the sum of `hashtextextended(row::text, 0)` over its rows, as numeric text
 * (order-independent, no overflow).
 *
 * A row's text form depends on session settings (time zone, date and float output), so
 * they are pinned first: pass a dedicated connection, not a pooled one other code shares.
 */
export type TableChecksums = Record<string, { rows: number; checksum: string }>;

/** Anything with `query(sql)`: a pg client (result `.rows`) or a TypeORM query runner (an array). */
export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

export const CHECKSUM_SESSION_SQL = [
  `SET TimeZone = 'UTC'`,
  `SET DateStyle = 'ISO, YMD'`,
  `SET IntervalStyle = 'postgres'`,
  `SET extra_float_digits = 1`,
  `SET bytea_output = 'hex'`,
];

export const CHECKSUM_TABLES_SQL = `
  SELECT c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
     AND c.relname <> 'typeorm_migrations'
   ORDER BY c.relname`;

/** The checksum of one table (its name already validated against the catalog). */
export function tableChecksumSql(table: string): string {
  const ident = `"${table.replace(/"/g, '""')}"`;
  return `SELECT count(*)::bigint::text AS rows,
                 coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text AS checksum
            FROM public.${ident} t`;
}

function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) {
    return result as T[];
  }
  return (result as { rows: T[] }).rows;
}

/** Row counts and checksums of every application table, read in one snapshot. */
export async function tableChecksums(db: Queryable): Promise<TableChecksums> {
  for (const sql of CHECKSUM_SESSION_SQL) {
    await db.query(sql);
  }
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const tables = rowsOf<{ name: string }>(await db.query(CHECKSUM_TABLES_SQL));
    const out: TableChecksums = {};
    for (const { name } of tables) {
      const [row] = rowsOf<{ rows: string; checksum: string }>(
        await db.query(tableChecksumSql(name)),
      );
      out[name] = { rows: Number(row.rows), checksum: row.checksum };
    }
    await db.query('COMMIT');
    return out;
  } catch (err) {
    await db.query('ROLLBACK');
    throw err;
  }
}

/** Differences between two checksum sets, one line per table ("" when equal). */
export function diffChecksums(expected: TableChecksums, actual: TableChecksums): string[] {
  const names = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  const out: string[] = [];
  for (const name of [...names].sort()) {
    const e = expected[name];
    const a = actual[name];
    if (!e) {
      out.push(`${name}: not in the manifest`);
    } else if (!a) {
      out.push(`${name}: missing from the restored copy`);
    } else if (e.rows !== a.rows || e.checksum !== a.checksum) {
      out.push(
        `${name}: expected ${e.rows} rows (checksum ${e.checksum}), found ${a.rows} (checksum ${a.checksum})`,
      );
    }
  }
  return out;
}

/**
 * The exact nearest neighbours of a recipe by its own embedding (cosine distance, ties by
 * id), by a sequential scan — the manifest's vector queries and their check use this.
 */
export async function exactNeighbours(
  db: Queryable,
  recipeId: string,
  limit: number,
): Promise<string[]> {
  await db.query('BEGIN READ ONLY');
  try {
    await db.query('SET LOCAL enable_indexscan = off');
    await db.query('SET LOCAL enable_bitmapscan = off');
    const rows = rowsOf<{ id: string }>(
      await db.query(
        `SELECT r.id::text AS id
           FROM recipes r, (SELECT embedding FROM recipes WHERE id = $1) q
          WHERE r.embedding IS NOT NULL
          ORDER BY r.embedding <=> q.embedding, r.id
          LIMIT $2`,
        [recipeId, limit],
      ),
    );
    await db.query('COMMIT');
    return rows.map((r) => r.id);
  } catch (err) {
    await db.query('ROLLBACK');
    throw err;
  }
}
