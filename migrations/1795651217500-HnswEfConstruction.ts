import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The HNSW index's ef_construction from 64 (spec) to 128 (issue 14, measured in
 * bench/README.md "No wrong answers"): at 100,000 rows, three builds with 128 left 0–1
 * of 300 queries below recall 0.5 at ef_search 200, where builds with 64 left 7–10.
 * Only the reloption changes here (an instant, no rebuild): rows inserted from now on
 * are linked with 128, and the rebuild job (POST /v1/ops/vector-index/rebuild, which
 * applies VECTOR_EF_CONSTRUCTION) rebuilds what is already indexed.
 */
export class HnswEfConstruction1795651217500 implements MigrationInterface {
  name = 'HnswEfConstruction1795651217500';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX recipes_embedding_hnsw_idx SET (ef_construction = 128)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER INDEX recipes_embedding_hnsw_idx SET (ef_construction = 64)`);
  }
}
