#!/usr/bin/env bash
# `npm run build`: nest build into dist/, skipped when dist/ is newer than every input
# (src/, migrations/, the tsconfigs, nest-cli.json, package-lock.json). nest build empties
# dist/ first: skipping an unneeded build keeps a running process's dist/ in place (the
# test suite's two lanes run scripts that build, like `npm start` and `npm run dr:restore`,
# while the other lane runs the built service). FORCE_BUILD=1 builds anyway.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=dist/.build-stamp
inputs=(src migrations tsconfig.json tsconfig.build.json nest-cli.json package-lock.json)
if [[ -z ${FORCE_BUILD:-} && -f $stamp && -f dist/src/main.js ]] &&
  [[ -z $(find "${inputs[@]}" -newer "$stamp" -print -quit 2>/dev/null) ]]; then
  exit 0
fi
# the stamp gets the time the build started: an input changed during it builds again next time
started=$(date +%s.%N)
nest build
touch -d "@$started" "$stamp"
