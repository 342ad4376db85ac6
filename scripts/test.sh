#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the local stack when it
# is not running, builds, then runs jest (unit + e2e) in native ESM mode.
# Extra arguments go to jest, e.g. `npm test -- test/health.e2e-spec.ts`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
if ! command -v promtool >/dev/null 2>&1; then
  echo "[test] installing promtool (Debian package prometheus) for the /metrics format check"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
bash docker/stack.sh up
npm run --silent build

export TZ=UTC
mkdir -p .stack
# The e2e files stop and kill shared nodes of the stack, so they run one at a time.
exec node --experimental-vm-modules --no-warnings=ExperimentalWarning node_modules/jest/bin/jest.js \
  --runInBand --json --outputFile=.stack/jest-results.json "$@"
