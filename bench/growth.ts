/**
 * How search cost grows with data (issue 14, target 5): the search bench at several table
 * sizes, each with the index holding `vector` and `halfvec` (VECTOR_STORAGE), side by side.
 *
 *   npm run bench:growth -- [--sizes 100000,200000,400000] [--storages vector,halfvec]
 *     [--queries 300] [--build-mem 4GB] [--tag NAME] [--render-only]
 *
 * Per size: one load and `vector` build (`bench:search --rows N`), then an independent
 * `halfvec` build of the same rows (`--skip-load --rebuild-index --storage halfvec`); each
 * run measures the raw SQL the service runs (its plan choice, settings and statement)
 * against exact answers computed in memory, and writes its own search-<date>-<tag>.json.
 * A run whose file exists is not repeated (an interrupted study resumes). This writes
 * growth-<date>[-tag].json and a chart growth-<date>[-tag].svg (latency and recall against
 * rows) beside them. See bench/README.md "Growth".
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { VECTOR_STORAGES, type VectorStorage } from '../src/recipes/vector-storage.js';
import { log } from './lib/progress.js';
import { REPO_DIR, resultsDir, runBench, writeReport } from './lib/paths.js';
import { table } from './lib/text-table.js';

interface Options {
  sizes: number[];
  storages: VectorStorage[];
  queries: number;
  buildMem: string;
  tag: string;
  renderOnly: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      sizes: { type: 'string', default: '100000,200000,400000' },
      storages: { type: 'string', default: 'vector,halfvec' },
      queries: { type: 'string', default: '300' },
      'build-mem': { type: 'string', default: '4GB' },
      tag: { type: 'string', default: '' },
      'render-only': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'npm run bench:growth -- [--sizes 100000,200000,400000] [--storages vector,halfvec]\n' +
        '  [--queries 300] [--build-mem 4GB] [--tag NAME] [--render-only (table and chart from existing runs)]\n',
    );
    process.exit(0);
  }
  const sizes = values.sizes.split(',').map((x) => Number(x.trim()));
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 100 || n > 10_000_000)) {
    throw new Error(`--sizes must be integers in [100, 10000000], got '${values.sizes}'`);
  }
  const storages = values.storages.split(',').map((x) => x.trim());
  for (const s of storages) {
    if (!(VECTOR_STORAGES as readonly string[]).includes(s)) {
      throw new Error(`--storages must be among ${VECTOR_STORAGES.join(', ')}, got '${s}'`);
    }
  }
  if (storages[0] !== 'vector' && storages.length > 1) {
    throw new Error('--storages lists vector first when it lists several (its run loads the rows)');
  }
  const queries = Number(values.queries);
  if (!Number.isInteger(queries) || queries < 1 || queries > 100_000) {
    throw new Error(`--queries must be an integer in [1, 100000], got '${values.queries}'`);
  }
  if (!/^\d+(MB|GB)$/.test(values['build-mem'])) {
    throw new Error(`--build-mem must look like 256MB or 4GB, got '${values['build-mem']}'`);
  }
  if (!/^[a-z0-9-]{0,30}$/.test(values.tag)) {
    throw new Error(`--tag must be lowercase letters, digits and dashes, got '${values.tag}'`);
  }
  return {
    sizes: [...sizes].sort((a, b) => a - b),
    storages: storages as VectorStorage[],
    queries,
    buildMem: values['build-mem'],
    tag: values.tag,
    renderOnly: values['render-only'],
  };
}

interface CaseResult {
  latencyMs: { p50: number; p95: number };
  recall: number;
  recallMin: number;
  missed: number;
  plans: Record<string, number>;
}

/** The parts of a search report (bench/search.ts) this study reads. */
interface SearchReport {
  startedAt: string;
  machine: Record<string, unknown>;
  load: { rows: number; generateAndCopyS: number; index: { seconds: number; definition: string } };
  sizes: { indexBytes: number; tableBytes: number; toastBytes: number };
  results: { rawSql: { cases: Record<string, CaseResult> } };
  parameters: Record<string, unknown>;
}

export interface GrowthPoint {
  rows: number;
  storage: VectorStorage;
  file: string;
  buildS: number;
  /** the index as built (pg_get_indexdef form) */
  definition: string;
  indexBytes: number;
  cases: Record<string, CaseResult>;
}

function runTag(o: Options, rows: number, storage: VectorStorage): string {
  return ['growth', o.tag, String(rows), storage].filter(Boolean).join('-');
}

/** The newest search report of `tag`, or null. */
async function findRun(tag: string): Promise<{ file: string; report: SearchReport } | null> {
  const dir = resultsDir();
  const names = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => /^search-\d{4}-\d{2}-\d{2}-/.test(f) && f.endsWith(`-${tag}.json`))
    .sort();
  const name = names.at(-1);
  if (!name) {
    return null;
  }
  const file = path.join(dir, name);
  return { file, report: JSON.parse(await readFile(file, 'utf8')) as SearchReport };
}

function runSearch(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_DIR, 'dist/bench/search.js'), ...args], {
      cwd: REPO_DIR,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`bench:search ${args.join(' ')} ended with ${signal ?? code}`)),
    );
  });
}

async function measure(o: Options): Promise<GrowthPoint[]> {
  const points: GrowthPoint[] = [];
  for (const rows of o.sizes) {
    for (const [i, storage] of o.storages.entries()) {
      const tag = runTag(o, rows, storage);
      let run = await findRun(tag);
      if (run && run.report.load.rows !== rows) {
        run = null;
      }
      if (!run && !o.renderOnly) {
        log(`growth: ${rows} rows, ${storage} (${tag})`);
        const args = [
          '--rows',
          String(rows),
          '--storage',
          storage,
          '--truth',
          'memory',
          '--skip-http',
          '--ef-sweep',
          '',
          '--concurrency',
          '',
          '--queries',
          String(o.queries),
          '--build-mem',
          o.buildMem,
          '--tag',
          tag,
        ];
        // the first storage loads the rows; the others build their index over the same rows
        await runSearch(i === 0 ? args : [...args, '--skip-load', '--rebuild-index']);
        run = await findRun(tag);
      }
      if (!run) {
        log(`growth: no run for ${rows} rows, ${storage}: left out`);
        continue;
      }
      points.push({
        rows,
        storage,
        file: path.basename(run.file),
        buildS: run.report.load.index.seconds,
        definition: run.report.load.index.definition,
        indexBytes: run.report.sizes.indexBytes,
        cases: run.report.results.rawSql.cases,
      });
    }
  }
  return points;
}

// ---------------------------------------------------------------------------
// Chart: two panels, p50/p95 latency and mean/min-case recall against rows

const COLOURS: Record<VectorStorage, string> = { vector: '#1f77b4', halfvec: '#d62728' };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}

interface Series {
  label: string;
  colour: string;
  dashed: boolean;
  points: Array<[number, number]>;
}

function panel(
  x0: number,
  title: string,
  yLabel: string,
  series: Series[],
  xs: number[],
  yMin: number,
  yMax: number,
): string {
  const w = 420;
  const h = 300;
  const left = x0 + 60;
  const top = 40;
  const px = (x: number): number => {
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    return left + (hi === lo ? w / 2 : ((x - lo) / (hi - lo)) * w);
  };
  const py = (y: number): number => top + h - ((y - yMin) / (yMax - yMin || 1)) * h;
  const out: string[] = [];
  out.push(
    `<text x="${left + w / 2}" y="24" text-anchor="middle" font-weight="bold">${esc(title)}</text>`,
  );
  out.push(`<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  for (let k = 0; k <= 5; k++) {
    const y = yMin + ((yMax - yMin) * k) / 5;
    const yy = py(y);
    out.push(`<line x1="${left}" y1="${yy}" x2="${left + w}" y2="${yy}" stroke="#eee"/>`);
    out.push(
      `<text x="${left - 6}" y="${yy + 4}" text-anchor="end" font-size="11">${Number(y.toPrecision(3))}</text>`,
    );
  }
  for (const x of xs) {
    out.push(
      `<text x="${px(x)}" y="${top + h + 16}" text-anchor="middle" font-size="11">${(x / 1000).toLocaleString('en')}k</text>`,
    );
  }
  out.push(
    `<text x="${left + w / 2}" y="${top + h + 34}" text-anchor="middle" font-size="12">rows</text>`,
  );
  out.push(
    `<text x="${x0 + 14}" y="${top + h / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 + 14} ${top + h / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, n) => {
    const d = s.points.map(
      ([x, y], i) => `${i ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`,
    );
    out.push(
      `<path d="${d.join(' ')}" fill="none" stroke="${s.colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const [x, y] of s.points) {
      out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3" fill="${s.colour}"/>`);
    }
    const ly = top + h + 52 + n * 16;
    out.push(
      `<line x1="${left}" y1="${ly - 4}" x2="${left + 24}" y2="${ly - 4}" stroke="${s.colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${left + 30}" y="${ly}" font-size="11">${esc(s.label)}</text>`);
  });
  return out.join('\n');
}

/** The next of 1, 2, 5 × 10^k at or above `x` × 1.05 (tick labels at fifths stay short). */
function niceCeil(x: number): number {
  const target = x * 1.05;
  const base = 10 ** Math.floor(Math.log10(target));
  return [1, 2, 5, 10].map((m) => m * base).find((v) => v >= target) ?? 10 * base;
}

export function growthSvg(points: GrowthPoint[], caption: string): string {
  const xs = [...new Set(points.map((p) => p.rows))].sort((a, b) => a - b);
  const storages = [...new Set(points.map((p) => p.storage))];
  const latency: Series[] = [];
  const recall: Series[] = [];
  for (const s of storages) {
    const mine = points.filter((p) => p.storage === s).sort((a, b) => a.rows - b.rows);
    const un = (p: GrowthPoint) => p.cases.unfiltered;
    latency.push(
      {
        label: `${s} p50 (unfiltered)`,
        colour: COLOURS[s],
        dashed: false,
        points: mine.map((p) => [p.rows, un(p).latencyMs.p50]),
      },
      {
        label: `${s} p95 (unfiltered)`,
        colour: COLOURS[s],
        dashed: true,
        points: mine.map((p) => [p.rows, un(p).latencyMs.p95]),
      },
    );
    recall.push(
      {
        label: `${s} mean recall@20 (unfiltered)`,
        colour: COLOURS[s],
        dashed: false,
        points: mine.map((p) => [p.rows, un(p).recall]),
      },
      {
        label: `${s} lowest case mean (any filter)`,
        colour: COLOURS[s],
        dashed: true,
        points: mine.map((p) => [p.rows, Math.min(...Object.values(p.cases).map((c) => c.recall))]),
      },
    );
  }
  const size: Series[] = storages.map((s) => ({
    label: `${s} index (MiB)`,
    colour: COLOURS[s],
    dashed: false,
    points: points
      .filter((p) => p.storage === s)
      .sort((a, b) => a.rows - b.rows)
      .map((p) => [p.rows, p.indexBytes / 2 ** 20] as [number, number]),
  }));
  const maxLatency = Math.max(1, ...latency.flatMap((s) => s.points.map(([, y]) => y)));
  const maxSize = Math.max(1, ...size.flatMap((s) => s.points.map(([, y]) => y)));
  const minRecall = Math.min(0.95, ...recall.flatMap((s) => s.points.map(([, y]) => y)));
  const height = 420 + 16 * Math.max(latency.length, recall.length);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="1500" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel(
      0,
      'Search latency (raw SQL, the service\u2019s plan)',
      'ms',
      latency,
      xs,
      0,
      niceCeil(maxLatency),
    ),
    panel(500, 'Recall@20', 'recall', recall, xs, Math.floor(minRecall * 100) / 100, 1),
    panel(1000, 'HNSW index size', 'MiB', size, xs, 0, niceCeil(maxSize)),
    `<text x="10" y="${height - 8}" font-size="10" fill="#555">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

function render(points: GrowthPoint[]): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const rows = points.map((p) => {
    const cases = Object.values(p.cases);
    return [
      p.rows.toLocaleString('en'),
      p.storage,
      `${p.buildS}`,
      mib(p.indexBytes),
      `${p.cases.unfiltered.latencyMs.p50} / ${p.cases.unfiltered.latencyMs.p95}`,
      `${Math.max(...cases.map((c) => c.latencyMs.p50))}`,
      `${p.cases.unfiltered.recall}`,
      `${Math.min(...cases.map((c) => c.recall))}`,
      `${cases.reduce((n, c) => n + c.missed, 0)}`,
    ];
  });
  return table(
    [
      'rows',
      'storage',
      'build s',
      'index',
      'unfiltered p50 / p95 ms',
      'worst case p50 ms',
      'recall (unfiltered)',
      'lowest case recall',
      'queries < 0.5 (all cases)',
    ],
    rows,
    2,
  );
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const points = await measure(o);
  if (points.length === 0) {
    throw new Error('no runs to report');
  }
  const first = await findRun(runTag(o, points[0].rows, points[0].storage));
  const machine = first?.report.machine ?? {};
  const report = {
    benchmark: 'growth',
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    parameters: o,
    points,
  };
  const file = await writeReport('growth', startedAt, o.tag, report);
  const caption =
    `${points.length} runs, ${o.queries} queries per case, limit 20, ef_search = the service default; ` +
    `from ${path.basename(file)}`;
  const svg = file.replace(/\.json$/, '.svg');
  await writeFile(svg, growthSvg(points, caption));
  process.stdout.write(
    `${render(points)}\n\nresults: ${path.relative(REPO_DIR, file)}\nchart: ${path.relative(REPO_DIR, svg)}\n`,
  );
}

runBench('growth', main);
