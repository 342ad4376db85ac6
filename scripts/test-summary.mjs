// One closing line for the whole `npm test` (both jest runs): "N passed, N failed".
// A missing results file counts as a failure: a run that did not report did not pass.
// Usage: node scripts/test-summary.mjs RESULTS.json [RESULTS.json ...]
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
const missing = [];
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    missing.push(file);
    failed += 1;
    continue;
  }
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed += r.numPassedTests;
  // a suite that failed to load or in a hook has no failed test of its own: count it
  failed += r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
}
if (missing.length > 0) {
  process.stderr.write(`[test] no results from: ${missing.join(', ')}\n`);
}
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
