import { EMBEDDING_DIMENSIONS } from './recipes.constants.js';

/**
 * How the HNSW index holds the embeddings (VECTOR_STORAGE):
 * - `vector`: 4-byte floats, the column itself (`embedding vector_cosine_ops`);
 * - `halfvec`: 2-byte floats, an expression index on `embedding::halfvec(1536)`
 *   (`halfvec_cosine_ops`): about half the index's size, so twice the rows fit in the
 *   same memory. The table keeps the full-precision column: answers report exact
 *   distances, exact scans and escalations compare full vectors, and switching back
 *   needs no data migration, only a rebuild.
 */
export type VectorStorage = 'vector' | 'halfvec';

export const VECTOR_STORAGES: readonly VectorStorage[] = ['vector', 'halfvec'];

const HALF = `halfvec(${EMBEDDING_DIMENSIONS})`;

/**
 * The distance the index orders by, for the query vector bound as parameter `ref`
 * (bound as `vector`, cast server-side: one parameter format for both storages).
 */
export function indexedDistance(storage: VectorStorage, ref: string): string {
  return storage === 'halfvec'
    ? `embedding::${HALF} <=> ${ref}::vector::${HALF}`
    : `embedding <=> ${ref}::vector`;
}

/** The column part of the HNSW index definition: `USING hnsw (<this>)`. */
export function indexColumn(storage: VectorStorage): string {
  return storage === 'halfvec'
    ? `(embedding::${HALF}) halfvec_cosine_ops`
    : 'embedding vector_cosine_ops';
}

/** What an HNSW index's definition (pg_get_indexdef) stores, or null when it is none of ours. */
export function storageOfDefinition(definition: string): VectorStorage | null {
  if (!/USING hnsw/i.test(definition)) {
    return null;
  }
  if (/halfvec_cosine_ops/.test(definition)) {
    return 'halfvec';
  }
  return /vector_cosine_ops/.test(definition) ? 'vector' : null;
}
