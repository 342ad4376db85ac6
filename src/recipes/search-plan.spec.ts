import {
  matchCountStatement,
  nearestStatement,
  planSettings,
  SearchTuning,
  VectorQuery,
} from './search-plan.js';
import { indexColumn, indexedDistance, storageOfDefinition } from './vector-storage.js';

const tuning: SearchTuning = {
  efSearch: 80,
  escalationEfSearch: 400,
  escalationExactConcurrency: 1,
  maxScanTuples: 20000,
  exactMaxRows: 2000,
  timeoutMs: 3000,
};
const query: VectorQuery = {
  embedding: [1, 0, 0],
  filters: { cuisine: 'thai', tags: ['quick'] },
  excludeId: '7d1b0a4e-3f7e-4c89-9a43-9f1c1c0f2b11',
  limit: 20,
  maxDistance: 0.8,
};

describe(planSettings.name, () => {
  it('leaves PostgreSQL only the HNSW index for an hnsw plan', () => {
    expect(planSettings('hnsw', tuning)).toEqual({
      statement_timeout: 3000,
      'hnsw.ef_search': 80,
      'hnsw.iterative_scan': 'relaxed_order',
      'hnsw.max_scan_tuples': 20000,
      enable_indexscan: 'on',
      enable_seqscan: 'off',
      enable_bitmapscan: 'off',
      enable_sort: 'off',
      jit: 'off',
    });
  });

  it('turns index scans off (and the rest back on) for an exact plan', () => {
    expect(planSettings('exact', tuning)).toEqual({
      statement_timeout: 3000,
      enable_indexscan: 'off',
      enable_seqscan: 'on',
      enable_bitmapscan: 'on',
      enable_sort: 'on',
      jit: 'off',
    });
  });

  it('lets an exact scan follow an hnsw one in the same transaction', () => {
    const planner = (s: Record<string, unknown>): string[] =>
      Object.keys(s).filter((k) => k.startsWith('enable_') || k === 'jit');
    expect(planner(planSettings('exact', tuning)).sort()).toEqual(
      planner(planSettings('hnsw', tuning)).sort(),
    );
  });
});

describe(nearestStatement.name, () => {
  it('bounds the distance inside the query, before its LIMIT', () => {
    const { sql, params } = nearestStatement(query, '[1,0,0]');
    const inner = sql.slice(sql.indexOf('('), sql.indexOf(')\n'));
    expect(inner).toMatch(
      /WHERE .*embedding <=> \$1::vector <= \$5::float8\s+ORDER BY distance LIMIT \$6::int/s,
    );
    expect(inner).toContain('cuisine = $2');
    expect(inner).toContain('tags @> $3::text[]');
    expect(inner).toContain('id <> $4::uuid');
    expect(params).toEqual(['[1,0,0]', 'thai', ['quick'], query.excludeId, 0.8, 20]);
    expect(sql).toMatch(/SELECT \* FROM nearest ORDER BY distance$/);
  });

  it('with a halfvec index, chooses and bounds rows by the half distance and answers by the exact one', () => {
    const { sql, params } = nearestStatement(query, '[1,0,0]', 'id', 'halfvec');
    const half = 'embedding::halfvec(1536) <=> $1::vector::halfvec(1536)';
    const inner = sql.slice(sql.indexOf('('), sql.indexOf(')\n'));
    expect(inner).toContain(`SELECT id, embedding <=> $1::vector AS distance`);
    expect(inner).toContain(`AND ${half} <= $5::float8`);
    expect(inner).toMatch(
      /ORDER BY embedding::halfvec\(1536\) <=> \$1::vector::halfvec\(1536\) LIMIT \$6::int$/,
    );
    expect(params).toEqual(['[1,0,0]', 'thai', ['quick'], query.excludeId, 0.8, 20]);
    expect(sql).toMatch(/SELECT \* FROM nearest WHERE distance <= \$5::float8 ORDER BY distance$/);
  });
});

describe(storageOfDefinition.name, () => {
  it.each([
    [
      'CREATE INDEX i ON public.recipes USING hnsw (embedding vector_cosine_ops) WITH (m=16)',
      'vector',
    ],
    [
      'CREATE INDEX i ON public.recipes USING hnsw (((embedding)::halfvec(1536)) halfvec_cosine_ops)',
      'halfvec',
    ],
    ['CREATE INDEX i ON public.recipes USING hnsw (embedding vector_l2_ops)', null],
    ['CREATE INDEX i ON public.recipes USING btree (cuisine)', null],
  ])('%s: %s', (definition, storage) => {
    expect(storageOfDefinition(definition)).toBe(storage);
  });

  it('builds the index column of each storage so that the definition reads back as it', () => {
    for (const storage of ['vector', 'halfvec'] as const) {
      const def = `CREATE INDEX i ON recipes USING hnsw (${indexColumn(storage)})`;
      expect(storageOfDefinition(def)).toBe(storage);
      expect(indexedDistance(storage, '$1')).toContain('<=>');
    }
  });
});

describe(matchCountStatement.name, () => {
  it('stops counting after exactMaxRows + 1 rows', () => {
    const { sql, params } = matchCountStatement(query, 2000);
    expect(sql).toContain('LIMIT $4');
    expect(params).toEqual(['thai', ['quick'], query.excludeId, 2001]);
  });
});
