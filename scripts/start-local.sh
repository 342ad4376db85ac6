#!/usr/bin/env bash
# Starts the service on the local stack: installs, brings the stack up, builds,
# migrates (at boot) and serves on PORT (default 3000). A development API key
# with every scope is generated once into .stack/dev-api-key.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
bash docker/stack.sh up
eval "$(bash docker/stack.sh env)"

key_file=.stack/dev-api-key
if [ ! -s "$key_file" ]; then
  (umask 077; node -e "process.stdout.write(require('node:crypto').randomBytes(24).toString('base64url'))" > "$key_file")
fi
if [ -z "${API_KEYS:-}" ]; then
  API_KEYS=$(node -e '
    const { createHash } = require("node:crypto");
    const secret = require("node:fs").readFileSync(process.argv[1], "utf8");
    const scopes = ["recipes:read", "recipes:write", "users:read", "users:write", "gdpr:export", "gdpr:erase",
      "consent:write", "audit:read", "backup:admin", "ops:read", "ops:admin"];
    process.stdout.write(JSON.stringify([{ id: "dev", hash: createHash("sha256").update(secret).digest("hex"), scopes }]));
  ' "$key_file")
fi
export API_KEYS
export DB_MIGRATIONS_RUN="${DB_MIGRATIONS_RUN:-true}"

npm run --silent build
echo "[start] API key with every scope: Authorization: Bearer \$(cat $key_file)"
exec node dist/src/main.js
