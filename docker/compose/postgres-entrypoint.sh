#!/usr/bin/env bash
# Wraps the image's docker-entrypoint.sh for both PostgreSQL nodes of the
# compose stack:
#   - makes the WAL archive volume writable by postgres (Docker creates a new
#     named volume root-owned, and archive_command runs as postgres);
#   - PG_ROLE=replica with an empty data directory: clones the primary with
#     pg_basebackup -R, so the node starts as a streaming hot standby.
# A data directory that already holds a cluster is never touched, so a replica
# the service promoted stays promoted across restarts.
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
PG_ROLE="${PG_ROLE:-primary}"
WAL_ARCHIVE_DIR="${WAL_ARCHIVE_DIR:-/var/lib/postgresql/wal-archive}"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    gosu postgres "$@"
  else
    "$@"
  fi
}

prepare_dir() {
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$1"
  fi
  chmod 0700 "$1"
}

clone_primary() {
  local host="${PRIMARY_HOST:?PRIMARY_HOST is required for a replica}"
  local port="${PRIMARY_PORT:-5432}"
  local user="${REPLICATION_USER:-replicator}"
  local slot="${REPLICATION_SLOT:-replica_1}"
  local password="${REPLICATION_PASSWORD:?REPLICATION_PASSWORD is required for a replica}"
  local deadline=$((SECONDS + ${PRIMARY_WAIT_SECONDS:-120}))

  until as_postgres pg_isready -q -h "$host" -p "$port"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "primary ${host}:${port} did not accept connections in time"
      exit 1
    fi
    sleep 2
  done

  log "cloning ${host}:${port} into ${PGDATA} (slot ${slot})"
  # -R writes standby.signal and primary_conninfo (with the password, into
  # postgresql.auto.conf of this volume); -X stream copies the WAL needed for a
  # consistent start; the slot (created by the primary's init script) keeps
  # the primary from recycling WAL the replica still needs.
  PGPASSWORD="$password" as_postgres pg_basebackup \
    --pgdata="$PGDATA" \
    --host="$host" --port="$port" --username="$user" --no-password \
    --write-recovery-conf --wal-method=stream --slot="$slot" \
    --checkpoint=fast
}

prepare_dir "$WAL_ARCHIVE_DIR"

case "$PG_ROLE" in
  primary) ;;
  replica)
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
      prepare_dir "$PGDATA"
      clone_primary
    fi
    ;;
  *)
    log "PG_ROLE must be primary or replica, got '${PG_ROLE}'"
    exit 1
    ;;
esac

exec docker-entrypoint.sh "$@"
