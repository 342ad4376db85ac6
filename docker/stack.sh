#!/usr/bin/env bash
# docker/stack.sh — local replica of the production data stack, run from the
# machine's own binaries (no Docker engine needed):
#
#   PostgreSQL primary  127.0.0.1:${STACK_PG_PRIMARY_PORT:-25432}  (streaming + WAL archive)
#   PostgreSQL replica  127.0.0.1:${STACK_PG_REPLICA_PORT:-25433}  (hot standby, physical slot)
#   PgBouncer           127.0.0.1:${STACK_PGBOUNCER_PORT:-26432}   (transaction pooling)
#   Redis               127.0.0.1:${STACK_REDIS_PORT:-26379}
#
# Everything lives in $STACK_DIR (default: <repo>/.stack, git-ignored through
# its own .gitignore). The system PostgreSQL (5432) / Redis (6379) / PgBouncer
# (6432) are never touched.
#
# Usage: docker/stack.sh up | down | status | env
#        docker/stack.sh start|stop|kill|restart primary|replica|pgbouncer|redis
#        docker/stack.sh rebuild replica
#        docker/stack.sh rejoin primary|replica     (after a failover)
#        docker/stack.sh pause|resume primary|replica  (SIGSTOP/SIGCONT: a hung node)
#        docker/stack.sh backup [full|diff|incr]
#        docker/stack.sh dr-prepare | dr-restore LABEL TYPE [TARGET]   (npm run dr:restore)
#
# Environment overrides: STACK_DIR, STACK_PG_PRIMARY_PORT, STACK_PG_REPLICA_PORT,
# STACK_PGBOUNCER_PORT, STACK_REDIS_PORT, STACK_PG_SHARED_BUFFERS (default 3GB: a 100,000-recipe HNSW index and its vectors, ~1.6 GB, stay in memory),
# STACK_PG_BIN (a PostgreSQL bin dir), STACK_WAIT_TIMEOUT (seconds, default 60),
# STACK_TLS_ONLY (default 1; 0: the nodes accept plain TCP as well, for `--tls-ab` benchmarks
# only; Redis then also listens on STACK_REDIS_PLAIN_PORT, default 26380),
# STACK_BASEBACKUP_TIMEOUT (seconds, default 300), STACK_RESTORE_TIMEOUT (seconds, default 3600:
# how long dr-restore waits for the archive's replay), STACK_REWIND_STREAM_TIMEOUT (seconds, default
# 10: how long a node rejoined by pg_rewind may take to stream before a fresh base backup).
#
# Exit codes: 0 ok; 1 error; 2 usage; 3 `status` with at least one node down.
set -euo pipefail

# ----------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd -P)

STACK_DIR=${STACK_DIR:-$REPO_DIR/.stack}
case $STACK_DIR in /*) ;; *) STACK_DIR=$PWD/$STACK_DIR ;; esac
STACK_DIR=${STACK_DIR%/}
if [[ -d $STACK_DIR ]]; then STACK_DIR=$(cd "$STACK_DIR" && pwd -P); fi

HOST=127.0.0.1
PRIMARY_PORT=${STACK_PG_PRIMARY_PORT:-25432}
REPLICA_PORT=${STACK_PG_REPLICA_PORT:-25433}
PGB_PORT=${STACK_PGBOUNCER_PORT:-26432}
REDIS_PORT=${STACK_REDIS_PORT:-26379}
PG_SHARED_BUFFERS=${STACK_PG_SHARED_BUFFERS:-3GB}
TLS_ONLY=${STACK_TLS_ONLY:-1}
REDIS_PLAIN_PORT=${STACK_REDIS_PLAIN_PORT:-26380}
WAIT_TIMEOUT=${STACK_WAIT_TIMEOUT:-60}
BASEBACKUP_TIMEOUT=${STACK_BASEBACKUP_TIMEOUT:-300}
REWIND_STREAM_TIMEOUT=${STACK_REWIND_STREAM_TIMEOUT:-10}
PG_DEFAULT_MAJOR=15

DB_NAME=recipes
DB_USER=app
# owns the schema (migrations run as it); the service (DB_USER) only gets rights on it
DB_MIGRATION_USER=app_owner
REPL_USER=replicator
REPL_SLOT=stack_replica
PGB_DB_RW=recipes
PGB_DB_RO=recipes_ro
PGB_ADMIN_USER=pgbouncer_admin
# Redis ACL users: the service's (only the commands it needs) and the stack's own admin
# (SHUTDOWN, and the tests' CONFIG/FLUSH); the default user is disabled.
REDIS_USER=dbu
REDIS_ADMIN_USER=dbu_admin
# Passwords: generated per stack into $STACK_DIR/secrets (docker/stack/tls.sh, load_secrets).
DB_PASSWORD= DB_MIGRATION_PASSWORD= REPL_PASSWORD= PGB_ADMIN_PASSWORD= REDIS_PASSWORD= REDIS_ADMIN_PASSWORD=

RUN_DIR=$STACK_DIR/run
LOG_DIR=$STACK_DIR/logs
STATE_DIR=$STACK_DIR/state
PGBR_DIR=$STACK_DIR/pgbackrest
PGBR_CONF=$PGBR_DIR/pgbackrest.conf
PGBR_REPO=$STACK_DIR/backup-repo
PGBR_STANZA=dbu
PRIMARY_DATA=$STACK_DIR/primary
REPLICA_DATA=$STACK_DIR/replica
PGB_DIR=$STACK_DIR/pgbouncer
PGB_INI=$PGB_DIR/pgbouncer.ini
PGB_USERLIST=$PGB_DIR/userlist.txt
PGB_PIDFILE=$RUN_DIR/pgbouncer.pid
REDIS_DIR=$STACK_DIR/redis
REDIS_CONF=$REDIS_DIR/redis.conf
REDIS_PIDFILE=$RUN_DIR/redis.pid
APT_DIR=$STACK_DIR/apt
BUILD_DIR=$STACK_DIR/build

NODES=(primary replica pgbouncer redis)

# Client libraries must not pick up the caller's defaults for these.
unset PGSERVICE PGSERVICEFILE PGOPTIONS PGSSLMODE PGREQUIRESSL PGTARGETSESSIONATTRS PGPASSFILE PGHOSTADDR
export PGCONNECT_TIMEOUT=3

PG_BIN=
PG_MAJOR=
PGB_BIN=
CHANGED=0          # set to 1 whenever `up`/`start` had to do something
APT_UPDATED=0

if [[ $EUID -eq 0 ]]; then
  SVC_USER=postgres   # postgres and pgbouncer refuse to run as root
  SUDO=()
else
  SVC_USER=$(id -un)
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else SUDO=(); fi
fi

# ----------------------------------------------------------------------------
# One file per concern under docker/stack/
# ----------------------------------------------------------------------------
for part in common tls install postgres pgbouncer redis backup; do
  # shellcheck source=/dev/null
  source "$SCRIPT_DIR/stack/$part.sh"
done
# Every TCP connection the scripts open (psql, pg_isready, pg_basebackup, the replicas'
# primary_conninfo written by pg_basebackup -R) verifies the nodes' certificate and name.
# Unix-socket connections ignore these.
export PGSSLMODE=verify-full PGSSLROOTCERT=$TLS_CA_CRT

# ----------------------------------------------------------------------------
# Node dispatch
# ----------------------------------------------------------------------------
node_start() {
  case $1 in
    primary | replica)
      ensure_pg "$1"
      wait_streaming
      pgb_verify
      ;;
    redis) redis_start ;;
    pgbouncer)
      pgb_start
      pg_pid primary >/dev/null || warn "the primary is down: pgbouncer runs but '$PGB_DB_RW' will fail until it is started"
      pgb_verify
      ;;
  esac
}

node_stop() {
  case $1 in
    primary | replica) pg_stop "$1" ;;
    redis) redis_stop ;;
    pgbouncer) pgb_stop ;;
  esac
}

node_kill() {
  case $1 in
    primary | replica) pg_kill "$1" ;;
    redis) redis_kill ;;
    pgbouncer) pgb_kill ;;
  esac
}

node_port() {
  case $1 in
    primary) echo "$PRIMARY_PORT" ;;
    replica) echo "$REPLICA_PORT" ;;
    pgbouncer) echo "$PGB_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
  esac
}

# prints one status line; 0 if the node is up
status_line() {
  local node=$1 port pid="" state=down extra=""
  port=$(node_port "$node")
  case $node in
    primary | replica)
      if pid=$(pg_pid "$node"); then
        if pg_ready "$node"; then
          state=up
          extra="role=$(pg_role "$node")"
          if [[ $node == replica && $extra == role=standby ]]; then
            extra+=" wal_receiver=$(pg_super replica postgres -c "select coalesce((select status from pg_stat_wal_receiver), 'none')" 2>/dev/null || echo '?')"
          elif [[ $node == primary ]]; then
            extra+=" streaming_replicas=$(pg_super primary postgres -c "select count(*) from pg_stat_replication where state = 'streaming'" 2>/dev/null || echo '?')"
          fi
        else
          extra="(process alive, not accepting connections)"
        fi
      fi
      ;;
    redis)
      if pid=$(redis_pid); then
        if redis_ready; then state=up; else extra="(process alive, no PONG)"; fi
      fi
      ;;
    pgbouncer)
      if pid=$(pgb_pid); then
        if pgb_ready; then state=up; else extra="(process alive, console not answering)"; fi
      fi
      ;;
  esac
  printf '[stack] %-9s %s:%-5s %-4s pid=%-7s %s\n' "$node" "$HOST" "$port" "$state" "${pid:--}" "$extra"
  [[ $state == up ]]
}

# ----------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------
env_lines() {
  cat <<EOF
export DB_NODES=$HOST:$PRIMARY_PORT,$HOST:$REPLICA_PORT
export DB_NAME=$DB_NAME
export DB_USER=$DB_USER
export DB_PASSWORD=$DB_PASSWORD
export DB_MIGRATION_USER=$DB_MIGRATION_USER
export DB_MIGRATION_PASSWORD=$DB_MIGRATION_PASSWORD
export PGBOUNCER_HOST=$HOST
export PGBOUNCER_PORT=$PGB_PORT
export PGBOUNCER_DB_RW=$PGB_DB_RW
export PGBOUNCER_DB_RO=$PGB_DB_RO
export PGBOUNCER_ADMIN_USER=$PGB_ADMIN_USER
export PGBOUNCER_ADMIN_PASSWORD=$PGB_ADMIN_PASSWORD
export DB_SSL=verify-full
export DB_SSL_CA=$TLS_CA_CRT
export REDIS_URL=rediss://$HOST:$REDIS_PORT
export REDIS_USERNAME=$REDIS_USER
export REDIS_PASSWORD=$REDIS_PASSWORD
export REDIS_TLS_CA=$TLS_CA_CRT
export STACK_REDIS_ADMIN_USERNAME=$REDIS_ADMIN_USER
export STACK_REDIS_ADMIN_PASSWORD=$REDIS_ADMIN_PASSWORD
export STACK_REDIS_PLAIN_PORT=$REDIS_PLAIN_PORT
export MONITORING_DB_VCPUS=$(nproc)
export STACK_DIR=$STACK_DIR
export STACK_PG_BIN=$PG_BIN
export BACKUP_PGBACKREST_CONFIG=$PGBR_CONF
export BACKUP_PGBACKREST_STANZA=$PGBR_STANZA
export BACKUP_OS_USER=$SVC_USER
export BACKUP_PG_BIN=$PG_BIN
EOF
}

cmd_env() {
  resolve_pg_bin 2>/dev/null || PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin}
  env_lines
}

cmd_status() {
  resolve_pg_bin 2>/dev/null || PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin}
  local n rc=0
  for n in "${NODES[@]}"; do
    status_line "$n" || rc=3
  done
  return $rc
}

print_summary() {
  cat <<EOF
[stack] ------------------------------------------------------------------------
[stack] stack dir   : $STACK_DIR   (logs in $LOG_DIR)
[stack] postgres    : $PG_BIN (PostgreSQL $PG_MAJOR, runs as OS user $SVC_USER)
[stack] tls         : every TCP port speaks TLS only; CA $TLS_CA_CRT (server certificate $TLS_SERVER_CRT)
[stack] secrets     : generated passwords in $SECRETS_DIR (0600; 'docker/stack.sh env' hands them out)
[stack] primary     : $HOST:$PRIMARY_PORT   PGPASSWORD=\$(cat $SECRETS_DIR/db-app) psql "host=$HOST port=$PRIMARY_PORT dbname=$DB_NAME user=$DB_USER sslmode=verify-full sslrootcert=$TLS_CA_CRT"
[stack] replica     : $HOST:$REPLICA_PORT   hot standby, streaming from the primary (slot $REPL_SLOT)
[stack] superuser   : psql -h $RUN_DIR -p $PRIMARY_PORT -U postgres   (unix socket, trust)
[stack] pgbouncer   : $HOST:$PGB_PORT   db $PGB_DB_RW -> primary, $PGB_DB_RO -> replica, * -> primary (transaction pooling)
[stack] pgb console : PGPASSWORD=\$(cat $SECRETS_DIR/pgbouncer-admin) psql "host=$HOST port=$PGB_PORT user=$PGB_ADMIN_USER dbname=pgbouncer sslmode=verify-full sslrootcert=$TLS_CA_CRT"
[stack] redis       : rediss://$HOST:$REDIS_PORT  REDISCLI_AUTH=\$(cat $SECRETS_DIR/redis-service) redis-cli --tls --cacert $TLS_CA_CRT -p $REDIS_PORT --user $REDIS_USER
[stack] service env : eval "\$(bash docker/stack.sh env)"
EOF
  # the settings without their secrets (those stay in the files above)
  env_lines | sed -E "s|^(export [A-Z_]*PASSWORD)=.*|\\1=(in $SECRETS_DIR)|" | sed 's/^/[stack]   /'
}

cmd_up() {
  local t0=$SECONDS
  lock_stack
  ensure_packages
  prepare_dirs
  pgbr_prepare
  ensure_pg primary
  pgbr_ensure_stanza
  ensure_pg replica
  wait_streaming
  redis_start
  pgb_start
  pgb_verify
  if [[ $TLS_ONLY == 0 ]]; then
    warn "STACK_TLS_ONLY=0: the nodes accept plain TCP too (Redis on $REDIS_PLAIN_PORT); for benchmarks only: a plain 'up' goes back to TLS only"
  fi
  if [[ $CHANGED -eq 0 ]]; then
    log "nothing to do: the stack was already up"
  else
    log "stack is up ($((SECONDS - t0))s)"
  fi
  cmd_status || die "some node is not up"
  print_summary
}

cmd_down() {
  if [[ ! -d $STACK_DIR ]]; then
    log "no stack in $STACK_DIR: nothing to stop"
    return 0
  fi
  resolve_pg_bin 2>/dev/null || PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin}
  lock_stack
  pgb_stop
  local extra
  for extra in "$STACK_DIR"/extra-*; do
    [[ -f $extra/postmaster.pid ]] || continue
    (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$extra" -m fast -w -t "$WAIT_TIMEOUT" -s stop >/dev/null 2>&1) || true
  done
  pg_stop replica
  pg_stop primary
  redis_stop
  local left=()
  mapfile -t left < <(stack_pids)
  if [[ ${#left[@]} -gt 0 ]]; then
    warn "processes of the stack still running, SIGTERM: ${left[*]}"
    kill -TERM "${left[@]}" 2>/dev/null || true
    if ! wait_until 10 pids_gone "${left[@]}"; then
      warn "SIGKILL: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
      wait_until 10 pids_gone "${left[@]}" || die "could not kill: ${left[*]}"
    fi
  fi
  local p busy=()
  for p in "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT"; do
    port_listening "$p" && busy+=("$p $(port_owner "$p")")
  done
  [[ ${#busy[@]} -eq 0 ]] || die "ports still in use after down: ${busy[*]}"
  log "stack is down (no process left, ports $PRIMARY_PORT $REPLICA_PORT $PGB_PORT $REDIS_PORT free)"
}

cmd_node() {
  local action=$1 node=${2:-}
  [[ " ${NODES[*]} " == *" $node "* ]] || { printf '[stack] ERROR: unknown node "%s"\n' "$node" >&2; usage; }
  case $action in
    start)
      lock_stack
      ensure_packages
      prepare_dirs
      node_start "$node"
      ;;
    stop | kill)
      if [[ ! -d $STACK_DIR ]]; then log "no stack in $STACK_DIR"; return 0; fi
      resolve_pg_bin 2>/dev/null || PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin}
      lock_stack
      if [[ $action == stop ]]; then node_stop "$node"; else node_kill "$node"; fi
      ;;
    restart)
      lock_stack
      ensure_packages
      prepare_dirs
      node_stop "$node"
      node_start "$node"
      ;;
    rejoin)
      [[ $node == primary || $node == replica ]] || die "only a PostgreSQL node can rejoin"
      lock_stack
      ensure_packages
      prepare_dirs
      pg_rejoin "$node"
      pgb_verify
      ;;
    pause | resume)
      [[ $node == primary || $node == replica ]] || die "only a PostgreSQL node can be paused"
      if [[ $action == pause ]]; then pg_signal_all "$node" STOP; else pg_signal_all "$node" CONT; fi
      ;;
    rebuild)
      [[ $node == replica ]] || die "only 'rebuild replica' is supported"
      lock_stack
      ensure_packages
      prepare_dirs
      ensure_pg primary
      replica_clone
      ensure_pg replica
      wait_streaming
      pgb_verify
      ;;
  esac
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || usage
  check_settings
  # `down` and the like on a folder that holds no stack must not create one
  if [[ -d $STACK_DIR || $cmd == up || $cmd == env || $cmd == start || $cmd == restart ]]; then
    load_secrets
  fi
  case $cmd in
    up) [[ $# -eq 1 ]] || usage; cmd_up ;;
    down) [[ $# -eq 1 ]] || usage; cmd_down ;;
    status) [[ $# -eq 1 ]] || usage; cmd_status ;;
    env) [[ $# -eq 1 ]] || usage; cmd_env ;;
    backup) [[ $# -le 2 ]] || usage; resolve_pg_bin; cmd_backup "${2:-full}" ;;
    dr-prepare) [[ $# -eq 1 ]] || usage; cmd_dr_prepare ;;
    dr-restore) [[ $# -eq 3 || $# -eq 4 ]] || usage; cmd_dr_restore "$2" "$3" "${4:-}" ;;
    start | stop | kill | restart | rebuild | rejoin | pause | resume) [[ $# -eq 2 ]] || usage; cmd_node "$cmd" "$2" ;;
    add-replica | start-replica | kill-replica | drop-replica)
      [[ $# -eq 2 && $2 =~ ^[0-9]+$ ]] || usage
      resolve_pg_bin 2>/dev/null || PG_BIN=${STACK_PG_BIN:-/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin}
      case $cmd in
        add-replica) lock_stack; ensure_packages; prepare_dirs; extra_add "$2" ;;
        start-replica) lock_stack; extra_start "$2" ;;
        kill-replica) extra_kill "$2" ;;
        drop-replica) lock_stack; extra_drop "$2" ;;
      esac
      ;;
    -h | --help | help) usage ;;
    *) printf '[stack] ERROR: unknown command "%s"\n' "$cmd" >&2; usage ;;
  esac
}

main "$@"
