import { EMBEDDING_DIMENSIONS } from '../../src/recipes/recipes.constants.js';

/** Unit vector along `axis`, optionally tilted towards `towards` by `weight`. */
export function axis(index: number, towards?: number, weight = 0): number[] {
  const v = new Array<number>(EMBEDDING_DIMENSIONS).fill(0);
  v[index] = 1;
  if (towards !== undefined) {
    v[towards] = weight;
  }
  return v;
}

export function cosineDistance(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return 1 - dot / Math.sqrt(na * nb);
}

/** Deterministic pseudo-random vector (mulberry32), for bulk test data. */
export function seededVector(seed: number): number[] {
  let t = seed >>> 0;
  const next = (): number => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r);
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: EMBEDDING_DIMENSIONS }, () => next() - 0.5);
}

export function recipeBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    title: 'Weeknight pasta',
    description: 'Quick and simple',
    ingredients: ['pasta', 'tomato'],
    steps: ['boil', 'mix'],
    cuisine: 'italian',
    tags: ['quick'],
    dietary: ['vegetarian'],
    totalMinutes: 25,
    ...overrides,
  };
}
