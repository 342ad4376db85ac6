import { Rng } from './rng.js';

/**
 * How the synthetic embeddings are drawn. Every row is
 *   normalise(shared·g + centre·c_k + Σ_j s_j z_j u_kj + isotropic·n/√D)
 * with g one direction common to all rows (real embedding sets are anisotropic),
 * c_k the centre of cluster k, u_kj a per-cluster low-rank basis with a power-law
 * spectrum s_j and n isotropic noise. The values are energies (squared norms).
 *
 * NOTE: pure isotropic noise in 1536 dimensions makes every member of a cluster
 * nearly equidistant from a query (distance concentration): nearest neighbours are
 * decided by noise and no ANN index can find them. Text-embedding sets have a low
 * local intrinsic dimension, which the low-rank part models.
 */
export interface DatasetParams {
  seed: number;
  dims: number;
  clusters: number;
  intrinsicDims: number;
  spectrumDecay: number;
  energy: { shared: number; centre: number; lowRank: number; isotropic: number };
}

export const DEFAULT_DATASET: Omit<DatasetParams, 'dims'> = {
  seed: 20_260_312,
  clusters: 40,
  intrinsicDims: 64,
  spectrumDecay: 0.8,
  energy: { shared: 0.15, centre: 0.35, lowRank: 0.4, isotropic: 0.1 },
};

function randomUnit(rng: Rng, dims: number): Float64Array {
  const v = new Float64Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    v[i] = rng.gaussian();
    norm += v[i] * v[i];
  }
  norm = Math.sqrt(norm);
  for (let i = 0; i < dims; i++) {
    v[i] /= norm;
  }
  return v;
}

/** The seeded clustered distribution; `sample` draws one unit vector from it. */
export class EmbeddingModel {
  private readonly shared: Float64Array;
  private readonly centres: Float64Array[];
  /** per cluster: intrinsicDims unit vectors, row-major */
  private readonly bases: Float64Array[];
  private readonly scales: Float64Array;
  private readonly cumulativeWeights: Float64Array;
  private readonly acc: Float64Array;

  constructor(readonly params: DatasetParams) {
    const { dims, clusters, intrinsicDims, spectrumDecay, energy } = params;
    const rng = new Rng(params.seed ^ 0x5bd1e995);
    this.shared = randomUnit(rng, dims);
    this.centres = [];
    this.bases = [];
    for (let k = 0; k < clusters; k++) {
      this.centres.push(randomUnit(rng, dims));
      const basis = new Float64Array(intrinsicDims * dims);
      for (let j = 0; j < intrinsicDims; j++) {
        basis.set(randomUnit(rng, dims), j * dims);
      }
      this.bases.push(basis);
    }
    const weights = Array.from({ length: intrinsicDims }, (_, j) => (j + 1) ** -spectrumDecay);
    const total = weights.reduce((a, b) => a + b, 0);
    this.scales = Float64Array.from(weights, (w) => Math.sqrt((energy.lowRank * w) / total));
    // uneven cluster sizes (log-normal weights), as topics are in a real catalogue
    const sizes = Array.from({ length: clusters }, () => Math.exp(0.5 * rng.gaussian()));
    const sum = sizes.reduce((a, b) => a + b, 0);
    this.cumulativeWeights = new Float64Array(clusters);
    let c = 0;
    sizes.forEach((s, k) => {
      c += s / sum;
      this.cumulativeWeights[k] = c;
    });
    this.acc = new Float64Array(dims);
  }

  /** Draws one vector into `out` (unit length); returns its cluster. */
  sample(rng: Rng, out: Float32Array): number {
    const { dims, intrinsicDims, energy } = this.params;
    const u = rng.uniform();
    let k = 0;
    while (k < this.cumulativeWeights.length - 1 && u > this.cumulativeWeights[k]) {
      k++;
    }
    const acc = this.acc;
    const a = Math.sqrt(energy.shared);
    const b = Math.sqrt(energy.centre);
    const e = Math.sqrt(energy.isotropic / dims);
    const centre = this.centres[k];
    for (let i = 0; i < dims; i++) {
      acc[i] = a * this.shared[i] + b * centre[i] + e * rng.gaussian();
    }
    const basis = this.bases[k];
    for (let j = 0; j < intrinsicDims; j++) {
      const coef = this.scales[j] * rng.gaussian();
      const off = j * dims;
      for (let i = 0; i < dims; i++) {
        acc[i] += coef * basis[off + i];
      }
    }
    let norm = 0;
    for (let i = 0; i < dims; i++) {
      norm += acc[i] * acc[i];
    }
    norm = Math.sqrt(norm);
    for (let i = 0; i < dims; i++) {
      out[i] = acc[i] / norm;
    }
    return k;
  }
}

export function vectorLiteral(v: Float32Array): string {
  return `[${Array.from(v).join(',')}]`;
}

// ---------------------------------------------------------------------------
// Filter columns: independent of the embedding cluster, with fixed probabilities.

export const CUISINES_OTHER = [
  'mexican',
  'indian',
  'japanese',
  'chinese',
  'french',
  'thai',
  'greek',
  'spanish',
  'american',
  'korean',
  'lebanese',
  'moroccan',
] as const;

/** [tag, probability]; 'quick' is the 10 % filter. */
const TAGS: ReadonlyArray<readonly [string, number]> = [
  ['weeknight', 0.3],
  ['family', 0.25],
  ['comfort-food', 0.2],
  ['budget', 0.2],
  ['spicy', 0.15],
  ['one-pot', 0.12],
  ['baking', 0.1],
  ['grill', 0.08],
  ['holiday', 0.05],
];

const ADJECTIVES = [
  'Smoky',
  'Creamy',
  'Crispy',
  'Rustic',
  'Zesty',
  'Hearty',
  'Golden',
  'Herbed',
  'Roasted',
  'Braised',
  'Charred',
  'Fresh',
  'Slow-cooked',
  'Garlicky',
  'Tangy',
  'Sticky',
];
const MAINS = [
  'chicken',
  'lentil',
  'chickpea',
  'mushroom',
  'salmon',
  'beef',
  'tofu',
  'aubergine',
  'pork',
  'prawn',
  'squash',
  'spinach',
  'tomato',
  'potato',
  'cauliflower',
  'lamb',
];
const DISHES = [
  'stew',
  'curry',
  'pasta',
  'salad',
  'soup',
  'tacos',
  'risotto',
  'pie',
  'bowl',
  'skewers',
  'bake',
  'stir-fry',
  'flatbread',
  'gratin',
  'noodles',
  'tart',
];
const INGREDIENTS = [
  'olive oil',
  'garlic',
  'onion',
  'shallot',
  'carrot',
  'celery',
  'tomato',
  'basil',
  'oregano',
  'thyme',
  'rosemary',
  'parsley',
  'coriander',
  'cumin',
  'paprika',
  'chilli',
  'ginger',
  'soy sauce',
  'lemon',
  'lime',
  'rice',
  'flour',
  'butter',
  'cream',
  'parmesan',
  'feta',
  'yoghurt',
  'egg',
  'chickpeas',
  'lentils',
  'spinach',
  'mushrooms',
  'potatoes',
  'stock',
  'white wine',
  'honey',
  'vinegar',
  'sesame oil',
  'coconut milk',
  'peppers',
];
const UNITS = ['g', 'ml', 'tbsp', 'tsp', 'pinch', 'cup'];
const VERBS = ['Chop', 'Fry', 'Simmer', 'Season', 'Whisk', 'Roast', 'Stir in', 'Serve with'];

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
  authorId: string;
}

/** Draws the non-vector columns of one recipe. */
export class RecipeFactory {
  private readonly authors: string[];

  constructor(
    private readonly rng: Rng,
    authorCount = 5_000,
  ) {
    this.authors = Array.from({ length: authorCount }, () => rng.uuid());
  }

  next(): RecipeRow {
    const r = this.rng;
    const cuisine = r.chance(0.5) ? 'italian' : r.pick(CUISINES_OTHER);
    const quick = r.chance(0.1);
    const tags = quick ? ['quick'] : [];
    for (const [tag, p] of TAGS) {
      if (r.chance(p)) {
        tags.push(tag);
      }
    }
    const dietary: string[] = [];
    if (r.chance(0.01)) {
      dietary.push('vegan', 'vegetarian', 'dairy-free');
    } else {
      if (r.chance(0.2)) {
        dietary.push('vegetarian');
      }
      if (r.chance(0.08)) {
        dietary.push('dairy-free');
      }
    }
    if (r.chance(0.1)) {
      dietary.push('gluten-free');
    }
    if (r.chance(0.15)) {
      dietary.push('nut-free');
    }
    const totalMinutes = quick
      ? 5 + r.int(16)
      : Math.min(360, Math.max(21, Math.round(Math.exp(Math.log(45) + 0.5 * r.gaussian()))));
    const main = r.pick(MAINS);
    const dish = r.pick(DISHES);
    const title = `${r.pick(ADJECTIVES)} ${main} ${dish}`;
    const ingredients = Array.from(
      { length: 5 + r.int(8) },
      () => `${1 + r.int(400)} ${r.pick(UNITS)} ${r.pick(INGREDIENTS)}`,
    );
    const steps = Array.from(
      { length: 3 + r.int(6) },
      (_, i) =>
        `${i + 1}. ${r.pick(VERBS)} the ${r.pick(INGREDIENTS)} for ${1 + r.int(15)} minutes.`,
    );
    return {
      id: r.uuid(),
      title,
      description: `A ${cuisine} ${dish} with ${main}, ready in ${totalMinutes} minutes.`,
      ingredients,
      steps,
      cuisine,
      tags,
      dietary,
      totalMinutes,
      authorId: r.pick(this.authors),
    };
  }
}

export interface SearchFilters {
  cuisine?: string;
  tags?: string[];
  dietary?: string[];
  maxTotalMinutes?: number;
  authorId?: string;
}

export interface FilterCase {
  name: string;
  /** the selectivity the generator aims at */
  target: number;
  filters: SearchFilters;
}

export const FILTER_CASES: readonly FilterCase[] = [
  { name: 'unfiltered', target: 1, filters: {} },
  { name: 'cuisine=italian', target: 0.5, filters: { cuisine: 'italian' } },
  { name: 'tags@>quick', target: 0.1, filters: { tags: ['quick'] } },
  { name: 'dietary@>vegan', target: 0.01, filters: { dietary: ['vegan'] } },
];
