#!/usr/bin/env bash
# Installs the project's npm dependencies when they are missing or older than the lock file.
# The runtime is Node.js 24 LTS from the registry's `node` package (a devDependency): its
# binary is node_modules/.bin/node, which every `npm run`/`npm start`/`npm test` puts first
# on PATH, so the machine's own Node (20 on Debian 12) only runs npm itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[deps] npm ci"
  npm ci --no-audit --no-fund
fi
# The CDK app (infra/) has its own package.json: aws-cdk-lib stays out of the service's install.
if [ ! -d infra/node_modules ] || [ ! -f infra/node_modules/.package-lock.json ] || [ infra/package-lock.json -nt infra/node_modules/.package-lock.json ]; then
  echo "[deps] npm ci (infra/)"
  npm ci --prefix infra --no-audit --no-fund
fi
if [ ! -x node_modules/.bin/node ]; then
  echo "[deps] node_modules/.bin/node is missing: the 'node' package (Node.js 24) did not install" >&2
  exit 1
fi
major=$(node_modules/.bin/node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 24 ]; then
  echo "[deps] node_modules/.bin/node is Node $major; the project runs on Node 24" >&2
  exit 1
fi
case ":$PATH:" in
  *":$PWD/node_modules/.bin:"*) ;;
  *) echo "[deps] note: run through npm (npm start, npm test) so that Node 24 from node_modules/.bin is the 'node' on PATH" >&2 ;;
esac
