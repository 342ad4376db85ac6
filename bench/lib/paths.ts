import { readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const REPO_DIR = path.resolve(import.meta.dirname, '..', '..', '..');

// The benches measure the runtime the service runs on (package.json's engines, the `node`
// devDependency that npm run puts first on PATH), and start the service with the same
// binary: figures taken with another Node would not be the service's.
{
  const engines = (
    JSON.parse(readFileSync(path.join(REPO_DIR, 'package.json'), 'utf8')) as {
      engines?: { node?: string };
    }
  ).engines?.node;
  const want = Number(/(\d+)/.exec(engines ?? '')?.[1] ?? 0);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < want) {
    process.stderr.write(
      `bench: this is Node ${process.versions.node}, the service needs ${engines} (package.json): ` +
        'run the bench with npm run bench:*, or with node_modules/.bin first on PATH\n',
    );
    process.exit(2);
  }
}

/** Where reports go: `bench/results`, or `BENCH_RESULTS_DIR` (the smoke test writes to a temp dir). */
export function resultsDir(): string {
  return process.env.BENCH_RESULTS_DIR ?? path.join(REPO_DIR, 'bench', 'results');
}

/**
 * A bench database's name: the default, or the environment's override (the smoke test uses
 * its own databases, so that a developer's loaded data set is never replaced by a tiny one).
 */
export function benchDatabase(variable: string, fallback: string): string {
  const name = process.env[variable] ?? fallback;
  if (!/^dbu_bench[a-z0-9_]{0,40}$/.test(name)) {
    throw new Error(`${variable} must match dbu_bench[a-z0-9_]*, got '${name}'`);
  }
  return name;
}

/**
 * Writes a bench's report to `<results>/<name>-<date>[-<tag>].json` atomically (a
 * temporary file renamed over it) and returns its path.
 */
export async function writeReport(
  name: string,
  startedAt: string,
  tag: string,
  report: unknown,
): Promise<string> {
  const dir = resultsDir();
  await mkdir(dir, { recursive: true });
  const suffix = tag ? `-${tag}` : '';
  const file = path.join(dir, `${name}-${startedAt.slice(0, 10)}${suffix}.json`);
  await writeFile(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
  return file;
}

/** Runs a bench's `main`; a failure prints `bench:<name> failed: <stack>` and exits 1. */
export function runBench(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(
      `bench:${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
