import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { from as copyFrom } from 'pg-copy-streams';
import { COPY_COLUMNS, COPY_HEADER, COPY_TRAILER, encodeRow } from './copy-binary.js';
import { type EmbeddingModel, RecipeFactory } from './dataset.js';
import { log, Progress } from './progress.js';
import { Rng } from './rng.js';
import { BENCH_DB, clientConfig, withClient, type StackEnv } from './stack.js';
import { round } from './stats.js';

const run = promisify(execFile);

export interface LoaderSide {
  rows: number;
  seconds: number;
  rowsPerS: number;
}

export interface LoaderReport {
  tableRowsBefore: number;
  rounds: number;
  rowsPerRound: number;
  /** `npm run recipes:load` (its own clock: reading, parsing and validating lines, upserts) */
  loader: LoaderSide;
  /** binary COPY of rows of the same kind into the same table, index in place */
  copy: LoaderSide;
  loaderToCopy: number;
}

/** Rows of a new population of the same kind, as both sides write them. */
function* rowsOf(model: EmbeddingModel, seed: number, count: number) {
  const rng = new Rng(seed);
  const factory = new RecipeFactory(new Rng(seed ^ 0x5bd1e995));
  const v = new Float32Array(model.params.dims);
  for (let i = 0; i < count; i++) {
    model.sample(rng, v);
    const row = factory.next();
    const embedding = Array.from(v, (x) => Number(x.toPrecision(8)));
    yield { row, embedding };
  }
}

/**
 * The bulk loader against COPY (issue 14, target 4), both into the live table with its
 * HNSW index (the loader's case: a table that serves searches keeps its index), in
 * alternating rounds so that neither side gets the smaller table. The loader runs as the
 * CLI does (`dist/src/recipes/cli/load-recipes.cli.js`, a child process, batches of 100,
 * checkpoints); its own `seconds` exclude process start. COPY's rows are encoded before
 * its clock starts. Every row written here is deleted afterwards.
 */
export async function loaderVsCopy(
  env: StackEnv,
  model: EmbeddingModel,
  o: { rows: number; rounds: number; seed: number; repoDir: string },
): Promise<LoaderReport> {
  const per = Math.max(100, Math.floor(o.rows / o.rounds));
  const dir = await mkdtemp(path.join(tmpdir(), 'dbu-loader-bench-'));
  const ids: string[] = [];
  const loader: LoaderSide = { rows: 0, seconds: 0, rowsPerS: 0 };
  const copy: LoaderSide = { rows: 0, seconds: 0, rowsPerS: 0 };
  const cli = path.join(o.repoDir, 'dist/src/recipes/cli/load-recipes.cli.js');
  const before = await withClient(clientConfig(env, env.primary), async (c) =>
    Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM recipes')).rows[0].n),
  );
  const progress = new Progress('loader / COPY rounds', o.rounds, 'rounds');
  try {
    for (let r = 0; r < o.rounds; r++) {
      // the loader's file
      const lines: string[] = [];
      for (const { row, embedding } of rowsOf(model, o.seed + 2 * r, per)) {
        ids.push(row.id);
        lines.push(JSON.stringify({ ...row, embedding }));
      }
      const file = path.join(dir, `round-${r}.jsonl`);
      await writeFile(file, `${lines.join('\n')}\n`);
      const { stdout } = await run(process.execPath, [cli, file], {
        cwd: o.repoDir,
        env: { ...process.env, ...env.vars, DB_NAME: BENCH_DB, LOG_LEVEL: 'warn' },
        maxBuffer: 16 * 1024 * 1024,
      });
      const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
        rows: number;
        seconds: number;
      };
      if (result.rows !== per) {
        throw new Error(`the loader wrote ${result.rows} rows of ${per}: ${stdout.slice(-500)}`);
      }
      loader.rows += result.rows;
      loader.seconds += result.seconds;

      // COPY's rows, encoded before the clock starts
      const chunks: Buffer[] = [COPY_HEADER];
      for (const { row, embedding } of rowsOf(model, o.seed + 2 * r + 1, per)) {
        ids.push(row.id);
        chunks.push(encodeRow(row, Float32Array.from(embedding)));
      }
      chunks.push(COPY_TRAILER);
      const seconds = await withClient(clientConfig(env, env.primary), async (c) => {
        const t0 = performance.now();
        await pipeline(
          Readable.from(chunks),
          c.query(
            copyFrom(`COPY recipes (${COPY_COLUMNS.join(', ')}) FROM STDIN WITH (FORMAT binary)`),
          ),
        );
        return (performance.now() - t0) / 1000;
      });
      copy.rows += per;
      copy.seconds += seconds;
      progress.update(r + 1);
      log(
        `round ${r + 1}: loader ${(per / result.seconds).toFixed(0)} rows/s, COPY ${(per / seconds).toFixed(0)} rows/s`,
      );
    }
    progress.done(o.rounds);
  } finally {
    await rm(dir, { recursive: true, force: true });
    if (ids.length > 0) {
      await withClient(clientConfig(env, env.primary), (c) =>
        c.query('DELETE FROM recipes WHERE id = ANY($1::uuid[])', [ids]),
      );
      log(`deleted the ${ids.length} rows written`);
    }
  }
  loader.rowsPerS = round(loader.rows / loader.seconds, 1);
  copy.rowsPerS = round(copy.rows / copy.seconds, 1);
  loader.seconds = round(loader.seconds, 1);
  copy.seconds = round(copy.seconds, 1);
  return {
    tableRowsBefore: before,
    rounds: o.rounds,
    rowsPerRound: per,
    loader,
    copy,
    loaderToCopy: round(loader.rowsPerS / copy.rowsPerS, 3),
  };
}
