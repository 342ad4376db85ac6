#!/usr/bin/env bash
# Every `npm run bench:*` in smoke mode (tiny parameters; no figure is judged): starts the
# local stack when it is not running, builds, then runs test/bench-smoke.smoke-spec.ts.
# Results: .stack/jest-results-bench-smoke.json; last line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
bash docker/stack.sh up
npm run --silent build

export TZ=UTC
mkdir -p .stack
rm -f .stack/jest-results-bench-smoke.json
status=0
node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js \
  --config bench/jest.smoke.config.js --runInBand --json \
  --outputFile=.stack/jest-results-bench-smoke.json "$@" || status=$?
echo
node scripts/test-summary.mjs .stack/jest-results-bench-smoke.json || status=1
exit $status
