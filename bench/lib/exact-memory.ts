import type { RecipeRow, SearchFilters } from './dataset.js';

/**
 * The bench's own copy of a table's embeddings and filter columns, for exact ground
 * truth without exact scans in PostgreSQL: those detoast every embedding (about 2.5 s
 * a query on 2 cores at 100,000 rows), this is one pass of dot products per query.
 * Distances are computed in float64 over the same float32 values pgvector holds; only
 * a tie within float32 rounding at the last place of an answer can differ.
 */
export class InMemoryTable {
  private readonly ids: string[] = [];
  private readonly rows: Array<Pick<RecipeRow, 'cuisine' | 'tags' | 'dietary' | 'totalMinutes'>> =
    [];
  private vectors: Float32Array;
  private norms: Float64Array;
  private readonly alive: boolean[] = [];
  private readonly position = new Map<string, number>();

  constructor(
    private readonly dims: number,
    capacity: number,
  ) {
    this.vectors = new Float32Array(dims * capacity);
    this.norms = new Float64Array(capacity);
  }

  get size(): number {
    return this.ids.length;
  }

  add(id: string, row: RecipeRow, v: Float32Array): void {
    const i = this.ids.length;
    if ((i + 1) * this.dims > this.vectors.length) {
      const grown = new Float32Array(this.vectors.length * 2);
      grown.set(this.vectors);
      this.vectors = grown;
      const norms = new Float64Array(this.norms.length * 2);
      norms.set(this.norms);
      this.norms = norms;
    }
    this.vectors.set(v, i * this.dims);
    let n = 0;
    for (let k = 0; k < this.dims; k++) {
      n += v[k] * v[k];
    }
    this.norms[i] = Math.sqrt(n);
    this.ids.push(id);
    this.rows.push({
      cuisine: row.cuisine,
      tags: row.tags,
      dietary: row.dietary,
      totalMinutes: row.totalMinutes,
    });
    this.alive.push(true);
    this.position.set(id, i);
  }

  remove(id: string): void {
    const i = this.position.get(id);
    if (i !== undefined) {
      this.alive[i] = false;
    }
  }

  liveIds(): string[] {
    return this.ids.filter((_, i) => this.alive[i]);
  }

  /**
   * Exact top-`limit` ids by cosine distance within `maxDistance`, for each filter set
   * (one pass of distances per query, shared by all of them).
   */
  topK(
    query: readonly number[],
    filterSets: readonly SearchFilters[],
    limit: number,
    maxDistance: number,
  ): string[][] {
    return this.topKHits(query, filterSets, limit, maxDistance).map((hits) =>
      hits.map((h) => h.id),
    );
  }

  /** `topK` with each answer's distance (nearest first). */
  topKHits(
    query: readonly number[],
    filterSets: readonly SearchFilters[],
    limit: number,
    maxDistance: number,
  ): Array<Array<{ id: string; distance: number }>> {
    const q = Float32Array.from(query);
    let qn = 0;
    for (let k = 0; k < this.dims; k++) {
      qn += q[k] * q[k];
    }
    qn = Math.sqrt(qn);
    const n = this.ids.length;
    const dist = new Float64Array(n);
    const vs = this.vectors;
    const dims = this.dims;
    for (let i = 0; i < n; i++) {
      if (!this.alive[i]) {
        dist[i] = Infinity;
        continue;
      }
      let dot = 0;
      const off = i * dims;
      for (let k = 0; k < dims; k++) {
        dot += q[k] * vs[off + k];
      }
      dist[i] = 1 - dot / (qn * this.norms[i]);
    }
    return filterSets.map((f) => {
      // the `limit` best so far, kept sorted (limit is small)
      const best: number[] = [];
      for (let i = 0; i < n; i++) {
        const d = dist[i];
        if (d > maxDistance || !matches(this.rows[i], f)) {
          continue;
        }
        if (best.length === limit && d >= dist[best[limit - 1]]) {
          continue;
        }
        let at = best.length === limit ? limit - 1 : best.length;
        while (at > 0 && dist[best[at - 1]] > d) {
          at--;
        }
        best.splice(at, 0, i);
        if (best.length > limit) {
          best.pop();
        }
      }
      return best.map((i) => ({ id: this.ids[i], distance: dist[i] }));
    });
  }
}

function matches(
  r: Pick<RecipeRow, 'cuisine' | 'tags' | 'dietary' | 'totalMinutes'>,
  f: SearchFilters,
): boolean {
  return (
    (f.cuisine === undefined || r.cuisine === f.cuisine) &&
    (!f.tags?.length || f.tags.every((t) => r.tags.includes(t))) &&
    (!f.dietary?.length || f.dietary.every((d) => r.dietary.includes(d))) &&
    (f.maxTotalMinutes === undefined || r.totalMinutes <= f.maxTotalMinutes)
  );
}
