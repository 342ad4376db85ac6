import type { SearchHitRow } from './search-plan.js';
import { chooseStrata } from './search.repository.js';
import {
  stratumKey,
  unitDistance,
  unitVector,
  Witness,
  witnessMatches,
  WitnessSet,
} from './witness-set.js';

/** A unit vector at angle `deg` in the plane of the first two axes (4 dimensions). */
function at(deg: number): number[] {
  const r = (deg * Math.PI) / 180;
  return [Math.cos(r), Math.sin(r), 0, 0];
}

function witness(id: string, deg: number, extra: Partial<Witness> = {}): Witness {
  return {
    id,
    unit: unitVector(at(deg))!,
    cuisine: 'italian',
    tags: ['quick'],
    dietary: [],
    totalMinutes: 20,
    authorId: null,
    ...extra,
  };
}

function hit(id: string, deg: number): SearchHitRow {
  return {
    id,
    title: id,
    cuisine: 'italian',
    tags: [],
    dietary: [],
    totalMinutes: 20,
    authorId: null,
    distance: 1 - Math.cos((deg * Math.PI) / 180),
  };
}

const query = unitVector(at(0))!;

describe('WitnessSet', () => {
  it('computes cosine distance of unit vectors, scaling the inputs', () => {
    expect(unitDistance(unitVector([2, 0])!, unitVector([0, 5])!)).toBeCloseTo(1, 6);
    expect(unitDistance(unitVector([3, 3])!, unitVector([1, 1])!)).toBeCloseTo(0, 6);
    expect(unitVector([0, 0, 0])).toBeNull();
  });

  it('flags a full answer when a qualifying sampled row is nearer than its last row', () => {
    const set = new WitnessSet();
    set.replace([witness('near', 5), witness('far', 80)]);
    const hits = [hit('a', 40), hit('b', 50)];
    const c = set.contradiction(query, {}, 2, hits, 2);
    expect(c?.witnessId).toBe('near');
    expect(c?.witnessDistance).toBeCloseTo(1 - Math.cos((5 * Math.PI) / 180), 6);
    expect(c?.lastDistance).toBeCloseTo(hits[1].distance, 12);
  });

  it('accepts an answer that holds the nearer rows, or nothing sampled is nearer', () => {
    const set = new WitnessSet();
    set.replace([witness('near', 5), witness('far', 80)]);
    expect(set.contradiction(query, {}, 2, [hit('near', 5), hit('b', 50)], 2)).toBeNull();
    expect(set.contradiction(query, {}, 2, [hit('a', 1), hit('b', 3)], 2)).toBeNull();
    // a short answer is the exact fallback's business, not the witnesses'
    expect(set.contradiction(query, {}, 2, [hit('a', 40)], 2)).toBeNull();
  });

  it('ignores witnesses the filters, the distance bound or the excluded id rule out', () => {
    const set = new WitnessSet();
    set.replace([
      witness('thai', 5, { cuisine: 'thai' }),
      witness('slow', 6, { totalMinutes: 90 }),
      witness('self', 7),
      witness('untagged', 8, { tags: [] }),
      witness('vegan', 9, { dietary: ['vegan', 'nut-free'] }),
    ]);
    const hits = [hit('a', 40), hit('b', 50)];
    const filters = { cuisine: 'italian', maxTotalMinutes: 30, tags: ['quick'] };
    expect(set.contradiction(query, filters, 2, hits, 2, 'self')?.witnessId).toBe('vegan');
    expect(
      set.contradiction(
        query,
        { ...filters, dietary: ['vegan', 'gluten-free'] },
        2,
        hits,
        2,
        'self',
      ),
    ).toBeNull();
    // beyond maxDistance the witness could not be in the answer either
    expect(set.contradiction(query, {}, 0.001, hits, 2)).toBeNull();
  });

  it('does not flag rows within float32 rounding of the last distance', () => {
    const set = new WitnessSet();
    set.replace([witness('tie', 50)]);
    expect(set.contradiction(query, {}, 2, [hit('a', 40), hit('b', 50)], 2)).toBeNull();
  });

  it('forgets every witness an exact answer contradicts (deleted or changed rows)', () => {
    const set = new WitnessSet();
    set.replace([
      witness('gone1', 5),
      witness('gone2', 6),
      witness('kept', 30),
      witness('far', 80),
    ]);
    const told: number[] = [];
    set.onStale = (n) => told.push(n);
    const exact = [hit('kept', 30), hit('b', 50)];
    expect(set.forgetContradicting(query, {}, 2, exact, 2)).toBe(2);
    expect(told).toEqual([2]);
    expect(set.forgetContradicting(query, {}, 2, exact, 2)).toBe(0);
    expect(told).toEqual([2]);
    expect(set.size).toBe(2);
    expect(set.contradiction(query, {}, 2, exact, 2)).toBeNull();
  });

  it('forgets a witness by id', () => {
    const set = new WitnessSet();
    set.replace([witness('x', 5), witness('y', 6)]);
    set.forget('x');
    expect(set.size).toBe(1);
    expect(set.contradiction(query, {}, 2, [hit('a', 40), hit('b', 50)], 2)?.witnessId).toBe('y');
  });

  it('matches authorId and every listed dietary value like the SQL filter', () => {
    const w = witness('w', 0, { authorId: 'u1', dietary: ['vegan'] });
    expect(witnessMatches(w, { authorId: 'u1' })).toBe(true);
    expect(witnessMatches(w, { authorId: 'u2' })).toBe(false);
    expect(witnessMatches(w, { dietary: ['vegan'] })).toBe(true);
    expect(witnessMatches(w, { dietary: ['vegan', 'halal'] })).toBe(false);
  });

  it('probes once per query: the same verdicts as the set, for every answer checked', () => {
    const set = new WitnessSet();
    set.replace([witness('near', 10), witness('mid', 35), witness('far', 80, { cuisine: 'thai' })]);
    const probe = set.probe(query, { cuisine: 'italian' }, 2);
    const first = [hit('a', 20), hit('b', 40)];
    expect(probe.contradiction(first, 2)).toEqual(
      set.contradiction(query, { cuisine: 'italian' }, 2, first, 2),
    );
    expect(probe.contradiction(first, 2)?.witnessId).toBe('near');
    expect(probe.contradictingIds(first, 2).sort()).toEqual(['mid', 'near']);
    // a wider answer that holds them: nothing contradicts it
    expect(probe.contradiction([hit('near', 10), hit('a', 20), hit('mid', 35)], 3)).toBeNull();
    // the filter is applied when probing: the thai witness never counts
    expect(probe.contradictingIds([hit('a', 85), hit('b', 86)], 2)).not.toContain('far');
  });

  it('drops the witnesses a probe finds stale from its set', () => {
    const set = new WitnessSet();
    set.replace([witness('gone', 10), witness('kept', 30)]);
    const told: number[] = [];
    set.onStale = (n) => told.push(n);
    const probe = set.probe(query, {}, 2);
    expect(probe.forgetContradicting([hit('a', 20), hit('kept', 30)], 2)).toBe(1);
    expect(set.size).toBe(1);
    expect(told).toEqual([1]);
  });

  it("checks a filtered query against its values' strata too, each witness once", () => {
    const set = new WitnessSet();
    // the table-wide sample holds no quick row near the query; the quick stratum does
    set.replace(
      [witness('far', 80), witness('both', 15)],
      new Map([
        [stratumKey('tags', 'quick'), [witness('q-near', 10), witness('both', 15)]],
        [stratumKey('cuisine', 'thai'), [witness('thai', 5, { cuisine: 'thai' })]],
      ]),
    );
    expect(set.size).toBe(5);
    const answer = [hit('a', 30), hit('b', 40)];
    const quick = set.probe(query, { tags: ['quick'] }, 2);
    expect(quick.contradictingIds(answer, 2).sort()).toEqual(['both', 'q-near']);
    // unfiltered: the table-wide sample only
    expect(set.probe(query, {}, 2).contradictingIds(answer, 2)).toEqual(['both']);
    // another value's stratum is not consulted, and its rows would fail the filter anyway
    expect(set.probe(query, { tags: ['quick'] }, 2).contradictingIds(answer, 2)).not.toContain(
      'thai',
    );
    // a stale witness leaves every list it is in
    set.drop(new Set(['both']));
    expect(set.size).toBe(3);
    expect(set.probe(query, { tags: ['quick'] }, 2).contradictingIds(answer, 2)).toEqual([
      'q-near',
    ]);
  });

  it('gives strata to values too frequent for exact scans and too rare for the table-wide sample', () => {
    const stats = [
      { column: 'cuisine' as const, vals: ['italian', 'thai', 'lao'], freqs: [0.5, 0.04, 0.001] },
      // element frequencies end with min, max and null frequency
      {
        column: 'tags' as const,
        vals: ['quick', 'spicy'],
        freqs: [0.1, 0.15, 0.1, 0.15, 0],
      },
      { column: 'dietary' as const, vals: null, freqs: null },
    ];
    const plan = { count: 10, rows: 128, exactMaxRows: 2000 };
    const chosen = chooseStrata(stats, 100_000, 256, plan);
    // italian: 128 expected in the table-wide sample (enough); lao: 100 rows (exact scans)
    expect(chosen.map((c) => `${c.column}:${c.value}`)).toEqual([
      'tags:spicy',
      'tags:quick',
      'cuisine:thai',
    ]);
    expect(chooseStrata(stats, 100_000, 256, { ...plan, count: 2 })).toHaveLength(2);
    expect(chooseStrata(stats, 100_000, 256, { ...plan, count: 0 })).toEqual([]);
    expect(chooseStrata(stats, 0, 256, plan)).toEqual([]);
  });
});
