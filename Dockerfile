# syntax=docker/dockerfile:1
# Database Unit service. Builds with BuildKit and with the legacy builder that
# docker-compose 1.29 uses (so no RUN --mount or COPY --link).

# --- build: full dependency tree, compile, then drop dev dependencies --------
FROM node:24-bookworm-slim AS build
WORKDIR /app

# Dependencies first: this layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY . .
# nest build compiles src/ and migrations/ with rootDir "." (tsconfig.json):
# dist/src/main.js and dist/migrations/*.js (listed in migrations/index.ts).
# prune leaves production dependencies only.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- runtime -----------------------------------------------------------------
FROM node:24-bookworm-slim AS runtime

# PostgreSQL 15 client tools (pg_dump, pg_restore, pg_basebackup, psql) for the
# backup jobs, from Debian bookworm, matching the servers' major version; tini
# as PID 1 so SIGTERM reaches node (graceful shutdown on ECS) and zombies of
# those tools are reaped.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    PORT=3000

WORKDIR /app
# Owned by root, read-only to the node user: the process cannot rewrite its code.
# package.json comes along for "type": "module".
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

# Encrypted GDPR export files (a volume in compose; S3 later).
RUN mkdir -p /var/lib/dbu/exports && chown node:node /var/lib/dbu/exports
USER node
EXPOSE 3000

# Liveness only: readiness (/health/ready) depends on the database and is left
# to the orchestrator (compose healthcheck, ECS target group).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get({host: '127.0.0.1', port: process.env.PORT || 3000, path: '/health/live', timeout: 4000}, (res) => process.exit(res.statusCode === 200 ? 0 : 1)).on('timeout', () => process.exit(1)).on('error', () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
