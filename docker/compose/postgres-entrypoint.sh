#!/usr/bin/env bash
# Wraps the image's docker-entrypoint.sh for both PostgreSQL nodes of the
# compose stack (image docker/postgres/Dockerfile: pgvector + pgBackRest):
#   - makes the pgBackRest repository volume writable by postgres (Docker may
#     create a new named volume root-owned, and archive_command runs as postgres);
#   - PG_ROLE=replica with an empty data directory: clones the primary with
#     pg_basebackup -R, so the node starts as a streaming hot standby, and adds
#     restore_command = pgbackrest archive-get (a standby that fell behind
#     streaming catches up from the repository; the primary has none, as in
#     docker/stack.sh);
#   - PG_ROLE=primary: once the server accepts TCP connections (after the
#     image's first-boot init), `pgbackrest stanza-create` (idempotent: a no-op
#     when the stanza exists for this cluster) and `check`.
# A data directory that already holds a cluster is never touched, so a replica
# the service promoted stays promoted across restarts.
set -Eeuo pipefail

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
PG_ROLE="${PG_ROLE:-primary}"
PGBACKREST_REPO_DIR="${PGBACKREST_REPO_DIR:-/var/lib/pgbackrest}"
PGBACKREST_STANZA="${PGBACKREST_STANZA:-dbu}"

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

  log "cloning ${host}:${port} into ${PGDATA} (slot ${slot}, TLS verify-full)"
  # -R writes standby.signal and primary_conninfo (with the password, into
  # postgresql.auto.conf of this volume); -X stream copies the WAL needed for a
  # consistent start; the slot (created by the primary's init script) keeps
  # the primary from recycling WAL the replica still needs.
  # TLS with the stack's CA: -R writes sslmode=verify-full and sslrootcert into
  # primary_conninfo, so streaming verifies the primary too.
  PGPASSWORD="$password" PGSSLMODE=verify-full PGSSLROOTCERT=/tls/ca.crt as_postgres pg_basebackup \
    --pgdata="$PGDATA" \
    --host="$host" --port="$port" --username="$user" --no-password \
    --write-recovery-conf --wal-method=stream --slot="$slot" \
    --checkpoint=fast
  # Replica only: WAL the primary no longer holds comes from the repository.
  printf '%s\n' "restore_command = 'pgbackrest --stanza=${PGBACKREST_STANZA} archive-get %f \"%p\"'" \
    | as_postgres tee -a "$PGDATA/postgresql.auto.conf" >/dev/null
}

# Background job of the primary's entrypoint: this process becomes the postmaster
# (exec below), which treats any child exiting with a status other than 0 or 1 as
# a crashed backend; so it always exits 0 and only logs what went wrong.
ensure_stanza() {
  local deadline=$((SECONDS + ${STANZA_WAIT_SECONDS:-600}))
  until pg_isready -q -h 127.0.0.1 -p 5432; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "pgbackrest: the server did not accept connections in time; stanza not checked"
      return 0
    fi
    sleep 2
  done
  if as_postgres pgbackrest --stanza="$PGBACKREST_STANZA" stanza-create \
    && as_postgres pgbackrest --stanza="$PGBACKREST_STANZA" check; then
    log "pgbackrest: stanza ${PGBACKREST_STANZA} ready, WAL archiving works"
  else
    log "pgbackrest: stanza-create/check of ${PGBACKREST_STANZA} failed (repository ${PGBACKREST_REPO_DIR}; is BACKUP_REPO_PASSPHRASE the one the repository was made with?)"
  fi
  return 0
}

if [ -z "${PGBACKREST_REPO1_CIPHER_PASS:-}" ]; then
  log "PGBACKREST_REPO1_CIPHER_PASS is empty (compose: set BACKUP_REPO_PASSPHRASE)"
  exit 1
fi
prepare_dir "$PGBACKREST_REPO_DIR"
for d in /var/log/pgbackrest /var/spool/pgbackrest /tmp/pgbackrest; do
  prepare_dir "$d"
done

# TCP over TLS only: a data directory made before TLS gets its `host` lines turned into
# `hostssl` (new clusters get them from postgres-init.sh; a replica copies the primary's).
if [ -s "$PGDATA/pg_hba.conf" ] && grep -q '^host[[:space:]]' "$PGDATA/pg_hba.conf"; then
  as_postgres sed -i 's/^host[[:space:]]/hostssl /' "$PGDATA/pg_hba.conf"
  log "pg_hba.conf: host lines are hostssl now (TCP over TLS only)"
fi

case "$PG_ROLE" in
  primary)
    (ensure_stanza || true; exit 0) &
    ;;
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
