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
hash=$(node -e "process.stdout.write(require('node:crypto').createHash('sha256').update(require('node:fs').readFileSync('$key_file','utf8')).digest('hex'))")
scopes='["recipes:read","recipes:write","users:read","users:write","gdpr:export","gdpr:erase","consent:write","audit:read","backup:admin","ops:read","ops:admin"]'
export API_KEYS="${API_KEYS:-[{\"id\":\"dev\",\"hash\":\"$hash\",\"scopes\":$scopes}]}"
export DB_MIGRATIONS_RUN="${DB_MIGRATIONS_RUN:-true}"

npm run --silent build
echo "[start] API key with every scope: Authorization: Bearer \$(cat $key_file)"
exec node dist/src/main.js
