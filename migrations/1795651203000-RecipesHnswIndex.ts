import { Logger } from '@nestjs/common';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { parallelWorkersFor } from '../src/recipes/vector-index.js';

const logger = new Logger('Migration:RecipesHnswIndex');

/**
 * HNSW index on the embeddings (spec: cosine, m = 16, ef_construction = 64) built
 * with the spec's maintenance_work_mem. Parallel builds only from pgvector 0.8.2:
 * earlier releases have a flaw in parallel HNSW builds (CVE-2026-3172).
 */
export class RecipesHnswIndex1795651203000 implements MigrationInterface {
  name = 'RecipesHnswIndex1795651203000';

  async up(q: QueryRunner): Promise<void> {
    const rows: Array<{ extversion: string }> = await q.query(
      `SELECT extversion FROM pg_extension WHERE extname = 'vector'`,
    );
    const version = rows[0]?.extversion ?? '0';
    const workers = parallelWorkersFor(version, 4);
    if (workers === 0) {
      logger.warn(
        { pgvector: version },
        'pgvector < 0.8.2: building the HNSW index without parallel workers',
      );
    }
    await q.query(`SET LOCAL maintenance_work_mem = '256MB'`);
    await q.query(`SET LOCAL max_parallel_maintenance_workers = ${workers}`);
    await q.query(`
      CREATE INDEX recipes_embedding_hnsw_idx ON recipes
        USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX recipes_embedding_hnsw_idx`);
  }
}
