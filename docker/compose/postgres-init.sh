#!/usr/bin/env bash
# Runs once, from /docker-entrypoint-initdb.d, when the primary's data
# directory is first initialised (the image's temporary server listens on its
# Unix socket only). Passwords come from the environment, never from a file in
# the repository.
#
# The image runs an executable *.sh here and sources a non-executable one; the
# subshell keeps `set -u` and friends out of the image's entrypoint either way.
(
  set -Eeuo pipefail

  run_sql() {
    PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
      --username "${POSTGRES_USER:-postgres}" "$@"
  }

  replication_user="${REPLICATION_USER:-replicator}"

  run_sql --dbname postgres \
    --set app_user="${APP_DB_USER:-app}" \
    --set app_password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is required}" \
    --set app_db="${APP_DB_NAME:-recipes}" \
    --set owner_user="${OWNER_DB_USER:-app_owner}" \
    --set owner_password="${OWNER_DB_PASSWORD:?OWNER_DB_PASSWORD is required}" \
    --set replication_user="$replication_user" \
    --set replication_password="${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is required}" \
    --set replication_slot="${REPLICATION_SLOT:-replica_1}" <<'SQL'
CREATE ROLE :"app_user" LOGIN CREATEDB PASSWORD :'app_password';
-- pg_monitor: pg_stat_statements of every user, pg_stat_replication, replay
-- lag. pg_signal_backend: cancelling runaway queries. As docker/stack.sh does.
GRANT pg_monitor, pg_signal_backend TO :"app_user";
-- Owns the database and the schema; migrations run as it. The service's role gets only
-- the rights the migrations grant it (the audit log: read and append). The owner may
-- act as the service (it hands it `recipes`: REINDEX needs ownership), never the reverse.
CREATE ROLE :"owner_user" LOGIN CREATEDB PASSWORD :'owner_password';
GRANT :"app_user" TO :"owner_user";
CREATE ROLE :"replication_user" LOGIN REPLICATION PASSWORD :'replication_password';
-- Created here rather than by pg_basebackup, so a rebuilt replica reuses it.
SELECT pg_create_physical_replication_slot(:'replication_slot');

-- Everything done in template1 is copied into the service's database below and
-- into every database created later (the tests' databases included).
\connect template1
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- Failover promotes a replica with pg_promote(), superuser-only by default.
-- The grant lives in each database's catalog; replication carries it to the
-- replicas.
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO :"app_user";

\connect postgres
CREATE DATABASE :"app_db" OWNER :"owner_user" TEMPLATE template1;
SQL

  # Streaming replication connections only match a `replication` line.
  printf '\n# replicas: pg_basebackup and streaming\nhostssl replication %s all scram-sha-256\n' \
    "$replication_user" >> "$PGDATA/pg_hba.conf"
  # TCP over TLS only: the image's `host all all all` line becomes `hostssl`, so a
  # connection without TLS finds no entry and is refused.
  sed -i 's/^host[[:space:]]/hostssl /' "$PGDATA/pg_hba.conf"
)
