#!/usr/bin/env bash
# `npm run fuzz`: the property-based fuzzing of the REST API (test/fuzz.e2e-spec.ts) as a
# long run, FUZZ_RUNS cases per route (default 50,000; `npm test` runs 2,000). Starts the
# local stack when it is not running and builds, like scripts/test.sh. FUZZ_SEED=<seed>
# replays a failure fast-check reported. Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
bash docker/stack.sh up
npm run --silent build

export TZ=UTC
export FUZZ_RUNS=${FUZZ_RUNS:-$((50 * 1000))}
export FUZZ_PROGRESS=${FUZZ_PROGRESS:-1}
mkdir -p .stack/logs
# the tests wait for their routes' runs: at a few ms a case, a route needs minutes
exec node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js \
  --runInBand --selectProjects e2e --ci --testTimeout=86400000 test/fuzz.e2e-spec.ts "$@"
