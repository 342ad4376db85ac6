/** The `recipes.embedding` column is vector(1536) (spec: embedding_dimensions). */
export const EMBEDDING_DIMENSIONS = 1536;

/** Spec: batch_size. The most recipes one batch upsert takes. */
export const BATCH_SIZE = 100;

export const HNSW_INDEX = 'recipes_embedding_hnsw_idx';
