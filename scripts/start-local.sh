#!/usr/bin/env bash
# Starts the service on the local stack: installs, brings the stack up, builds,
# migrates (at boot) and serves on PORT (default 3000). A development API key
# with every scope is generated once into .stack/dev-api-key.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
bash docker/stack.sh up
# The stack's settings, except those the caller set (e.g. DB_NAME=other npm start).
stack_env=$(bash docker/stack.sh env)
while IFS= read -r line; do
  [[ $line =~ ^export\ ([A-Z0-9_]+)= ]] || continue
  [[ -n ${!BASH_REMATCH[1]:-} ]] || eval "$line"
done <<<"$stack_env"

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
# `npm start` runs this under `sh -c` and passes a SIGTERM on to that shell only, which
# dies without forwarding it: the service asks the kernel for SIGTERM when its parent
# dies, so that one signal to npm drains and stops it (Ctrl-C reaches it directly).
if setpriv --help 2>/dev/null | grep -q -- '--pdeathsig'; then
  exec setpriv --pdeathsig TERM node dist/src/main.js
fi
exec node dist/src/main.js
