# shellcheck shell=bash
# docker/stack/postgres.sh — the primary, the streaming replica, rejoin after a failover, extra replicas: sourced by docker/stack.sh (its settings and helpers are in scope).

# ----------------------------------------------------------------------------
# PostgreSQL
# ----------------------------------------------------------------------------
pg_data() { if [[ $1 == primary ]]; then echo "$PRIMARY_DATA"; else echo "$REPLICA_DATA"; fi; }
pg_port() { if [[ $1 == primary ]]; then echo "$PRIMARY_PORT"; else echo "$REPLICA_PORT"; fi; }
pg_log()  { echo "$LOG_DIR/$1.log"; }

# postmaster pid of a node, only if that process is alive AND serves that data dir
pg_pid() {
  local data pid
  data=$(pg_data "$1")
  pid=$(read_pidfile "$data/postmaster.pid") || return 1
  proc_alive "$pid" || return 1
  [[ $(proc_comm "$pid") == postgres ]] || return 1
  [[ $(proc_cwd "$pid") == "$data" ]] || return 1
  echo "$pid"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$(pg_port "$1")" -t 2 >/dev/null 2>&1; }

# psql as the superuser over the unix socket (trust)
pg_super() {
  local node=$1 db=$2
  shift 2
  "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$(pg_port "$node")" -U postgres -d "$db" "$@"
}

pg_role() {
  local r
  r=$(pg_super "$1" postgres -c 'select pg_is_in_recovery()' 2>/dev/null) || { echo "?"; return 0; }
  if [[ $r == t ]]; then echo standby; else echo primary; fi
}

pg_sysid() {
  "$PG_BIN/pg_controldata" -D "$1" 2>/dev/null | awk -F': *' '/^Database system identifier/ {print $2}'
}

pg_initialized() { [[ -f $(pg_data "$1")/global/pg_control && -f $(pg_data "$1")/PG_VERSION ]]; }

check_pg_version() {
  local data=$1 v
  [[ -f $data/PG_VERSION ]] || return 0
  v=$(cat "$data/PG_VERSION")
  [[ $v == "$PG_MAJOR" ]] || die "$data was created by PostgreSQL $v but the stack uses $PG_MAJOR ($PG_BIN). Remove it (rm -rf $STACK_DIR) or set STACK_PG_BIN=/usr/lib/postgresql/$v/bin"
}

pg_conf_content() {
  local node=$1
  cat <<EOF
# Managed by docker/stack.sh: rewritten on every 'up'/'start'. Edit the script, not this file.
listen_addresses = '$HOST'
port = $(pg_port "$node")
unix_socket_directories = '$RUN_DIR'
max_connections = 300
shared_buffers = '$PG_SHARED_BUFFERS'
maintenance_work_mem = '256MB'
password_encryption = 'scram-sha-256'

# TLS (docker/stack/tls.sh): TCP connections are accepted over TLS only (pg_hba.conf has
# hostssl lines and no host lines); server certificate $(tls_fingerprint)
ssl = on
ssl_cert_file = '$TLS_SERVER_CRT'
ssl_key_file = '$TLS_SERVER_KEY'
ssl_ca_file = '$TLS_CA_CRT'
ssl_min_protocol_version = 'TLSv1.2'

wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = '4GB'
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = '1s'
fsync = on

shared_preload_libraries = 'pg_stat_statements,auto_explain'
pg_stat_statements.track = all
track_io_timing = on
# Plans of statements slower than the service's slow-query threshold (DB_SLOW_QUERY_MS)
# go to the node's log. log_analyze stays off: it would time every plan node of every
# statement. A session may raise it for a diagnosis: SET auto_explain.log_analyze = on.
auto_explain.log_min_duration = '2s'
auto_explain.log_analyze = off
auto_explain.log_format = 'text'

logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
EOF
  # Both nodes archive through pgBackRest: a standby starts archiving when it is promoted.
  # archive_timeout bounds the WAL not yet archived on a quiet cluster (the RPO). The
  # replica falls back to the repository's WAL when streaming cannot serve it.
  cat <<EOF

archive_mode = on
archive_command = 'pgbackrest --config=$PGBR_CONF --stanza=$PGBR_STANZA archive-push %p'
archive_timeout = 60
EOF
  if [[ $node != primary ]]; then
    cat <<EOF
restore_command = 'pgbackrest --config=$PGBR_CONF --stanza=$PGBR_STANZA archive-get %f "%p"'
EOF
  fi
}

pg_hba_content() {
  cat <<'EOF'
# Managed by docker/stack.sh
# TCP only over TLS: with no 'host' line, a connection without TLS finds no entry and is
# refused ("no pg_hba.conf entry ... no encryption").
# TYPE   DATABASE     USER  ADDRESS       METHOD
local    all          all                 trust
local    replication  all                 trust
hostssl  all          all   127.0.0.1/32  scram-sha-256
hostssl  replication  all   127.0.0.1/32  scram-sha-256
EOF
  if [[ $TLS_ONLY == 0 ]]; then
    cat <<'EOF'
# STACK_TLS_ONLY=0 (benchmarks of TLS against no TLS): plain TCP too
host     all          all   127.0.0.1/32  scram-sha-256
EOF
  fi
}

# Writes stack.conf + pg_hba.conf of a node. 0 = something changed.
pg_write_config() {
  local node=$1 data changed=1
  data=$(pg_data "$node")
  if pg_conf_content "$node" | install_file "$data/stack.conf" 600; then changed=0; fi
  if pg_hba_content | install_file "$data/pg_hba.conf" 600; then changed=0; fi
  if ! grep -q "^include_if_exists = 'stack.conf'" "$data/postgresql.conf"; then
    printf "\n# docker/stack.sh settings (override everything above)\ninclude_if_exists = 'stack.conf'\n" >>"$data/postgresql.conf"
    changed=0
  fi
  return $changed
}

pg_init_primary() {
  local data=$PRIMARY_DATA
  # A new cluster wipes the repository (it cannot take a new system id's WAL): after the
  # loss of the primary's folder that would destroy the very backups to restore from.
  if pgbr_has_backups; then
    die "the primary's data folder $data holds no cluster, but the backup repository $PGBR_REPO holds backups of one: restore it with 'npm run dr:restore' (docs/dr_runbook.md); to start an empty cluster instead, remove $PGBR_REPO first"
  fi
  if [[ -d $data ]] && [[ -n $(ls -A "$data" 2>/dev/null) ]]; then
    warn "$data exists but holds no complete cluster (interrupted initdb?): re-initialising it"
  fi
  rm -rf "$data"
  mkdir -m 700 "$data"
  [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$data"
  local locale=C.UTF-8
  locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$' || locale=C
  log "initdb primary ($PG_BIN, locale $locale) in $data"
  (cd "$STACK_DIR" && as_svc "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale="$locale" \
      --data-checksums --auth-local=trust --auth-host=scram-sha-256 >"$LOG_DIR/initdb.log" 2>&1) \
    || { tail_log "$LOG_DIR/initdb.log"; die "initdb failed"; }
  rm -f "$STATE_DIR/primary.bootstrapped"
  # the repository belongs to the old cluster (another system id)
  pgbr_wipe_repo
  CHANGED=1
}

pg_bootstrap_sql() {
  cat <<EOF
SET client_min_messages = warning;
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB NOSUPERUSER PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB NOSUPERUSER PASSWORD '$DB_PASSWORD';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_MIGRATION_USER') THEN
    CREATE ROLE $DB_MIGRATION_USER LOGIN CREATEDB NOSUPERUSER PASSWORD '$DB_MIGRATION_PASSWORD';
  ELSE
    ALTER ROLE $DB_MIGRATION_USER LOGIN CREATEDB NOSUPERUSER PASSWORD '$DB_MIGRATION_PASSWORD';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$REPL_USER') THEN
    CREATE ROLE $REPL_USER LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
  ELSE
    ALTER ROLE $REPL_USER LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
  END IF;
END
\$\$;
GRANT pg_monitor, pg_signal_backend TO $DB_USER;
-- The owner (migrations) may hand a table to the service and still alter it (recipes:
-- REINDEX needs ownership). Never the other way round: the service holds no owner rights.
GRANT $DB_USER TO $DB_MIGRATION_USER;
\\connect template1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- failover: the service promotes a replica with pg_promote() (superuser-only by default);
-- backups: it pauses a replica's replay while it writes a backup's manifest
-- (pg_wal_replay_pause/resume, superuser-only by default); the grants are per database
-- and replicate with it
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_wal_replay_pause(), pg_catalog.pg_wal_replay_resume() TO $DB_USER;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_MIGRATION_USER TEMPLATE template1'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \\gexec
\\connect $DB_NAME
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_wal_replay_pause(), pg_catalog.pg_wal_replay_resume() TO $DB_USER;
-- A stack made before the owner role: the database and what migrations made in it pass
-- from the service to the owner (the next migration grants the service its rights).
DO \$\$
DECLARE
  obj record;
BEGIN
  IF (SELECT datdba FROM pg_database WHERE datname = current_database()) = '$DB_USER'::regrole THEN
    ALTER DATABASE $DB_NAME OWNER TO $DB_MIGRATION_USER;
    FOR obj IN SELECT oid::regclass AS rel FROM pg_class
                WHERE relnamespace = 'public'::regnamespace AND relowner = '$DB_USER'::regrole
                  AND relkind IN ('r', 'p', 'v', 'm', 'f') LOOP
      EXECUTE format('ALTER TABLE %s OWNER TO $DB_MIGRATION_USER', obj.rel);
    END LOOP;
    FOR obj IN SELECT oid::regprocedure AS fn FROM pg_proc
                WHERE pronamespace = 'public'::regnamespace AND proowner = '$DB_USER'::regrole LOOP
      EXECUTE format('ALTER FUNCTION %s OWNER TO $DB_MIGRATION_USER', obj.fn);
    END LOOP;
  END IF;
END
\$\$;
\\connect postgres
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_wal_replay_pause(), pg_catalog.pg_wal_replay_resume() TO $DB_USER;
EOF
}

pg_bootstrap() {
  local sysid
  # the suffix is the bootstrap SQL's version and a digest of the generated passwords: a
  # changed script or a new password runs it again (it is idempotent)
  sysid="$(pg_sysid "$PRIMARY_DATA"):4:$(sha256_hex "$DB_PASSWORD $DB_MIGRATION_PASSWORD $REPL_PASSWORD" | cut -c1-16)"
  if [[ -f $STATE_DIR/primary.bootstrapped && $(cat "$STATE_DIR/primary.bootstrapped") == "$sysid" ]]; then
    return 0
  fi
  log "creating roles ($DB_USER, $DB_MIGRATION_USER, $REPL_USER), database $DB_NAME, extensions vector + pg_stat_statements"
  pg_bootstrap_sql | pg_super primary postgres -f - \
    || die "bootstrap SQL failed on the primary"
  echo "$sysid" >"$STATE_DIR/primary.bootstrapped"
  CHANGED=1
}

# remove pid / socket lock files left by a dead postmaster (kill -9, reboot)
pg_clean_stale() {
  local node=$1 data port pid lk lpid left=()
  data=$(pg_data "$node")
  port=$(pg_port "$node")
  # orphaned children of a SIGKILLed postmaster keep the shared memory in use
  mapfile -t left < <(data_dir_pids "$data")
  if [[ ${#left[@]} -gt 0 ]]; then
    warn "$node: killing leftover postgres processes of a dead postmaster: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
    wait_until 10 pids_gone "${left[@]}" || die "$node: leftover processes do not die: ${left[*]}"
  fi
  if [[ -e $data/postmaster.pid ]]; then
    pid=$(read_pidfile "$data/postmaster.pid" || echo "?")
    if proc_zombie "$pid"; then wait_reaped "$pid"; fi
    warn "$node: removing stale $data/postmaster.pid (pid $pid is not a running postmaster of this node)"
    rm -f "$data/postmaster.pid"
  fi
  lk=$RUN_DIR/.s.PGSQL.$port.lock
  if [[ -e $lk ]]; then
    # no process of this node is left (checked above), so the lock is stale
    lpid=$(read_pidfile "$lk" || echo "")
    if proc_zombie "$lpid"; then wait_reaped "$lpid"; fi
    warn "$node: removing stale socket lock $lk (pid ${lpid:-?})"
    rm -f "$lk" "$RUN_DIR/.s.PGSQL.$port"
  fi
}

pg_start() {
  local node=$1 data port pid logf
  data=$(pg_data "$node")
  port=$(pg_port "$node")
  logf=$(pg_log "$node")
  if pid=$(pg_pid "$node"); then
    if pg_ready "$node"; then
      log "$node already running (pid $pid, port $port, $(pg_role "$node"))"
      return 0
    fi
    log "$node process $pid exists but is not ready yet, waiting"
    wait_until "$WAIT_TIMEOUT" pg_ready "$node" || { tail_log "$logf"; die "$node (pid $pid) not ready after ${WAIT_TIMEOUT}s"; }
    log "$node ready (pid $pid, port $port)"
    return 0
  fi
  pg_clean_stale "$node"
  if port_taken "$port"; then
    die_port "$node" "$port" "STACK_PG_$( [[ $node == primary ]] && echo PRIMARY || echo REPLICA )_PORT"
  fi
  log "starting $node on $HOST:$port (log $logf)"
  if ! (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$data" -l "$logf" -w -t "$WAIT_TIMEOUT" -s start >/dev/null); then
    tail_log "$logf"
    if tail -n 20 "$logf" 2>/dev/null | grep -q 'could not bind'; then
      die_port "$node" "$port" "STACK_PG_$( [[ $node == primary ]] && echo PRIMARY || echo REPLICA )_PORT"
    fi
    die "$node failed to start"
  fi
  wait_until "$WAIT_TIMEOUT" pg_ready "$node" || { tail_log "$logf"; die "$node not accepting connections after ${WAIT_TIMEOUT}s"; }
  pid=$(pg_pid "$node") || pid="?"
  log "$node ready (pid $pid, port $port, $(pg_role "$node"))"
  CHANGED=1
}

# wait until DATA has no postgres process and PORT is free; escalate to SIGKILL
pg_wait_dead() {
  local node=$1 timeout=$2 data port left=()
  data=$(pg_data "$node")
  port=$(pg_port "$node")
  if ! wait_until "$timeout" pg_node_gone "$node"; then
    mapfile -t left < <(data_dir_pids "$data")
    if [[ ${#left[@]} -gt 0 ]]; then
      warn "$node: processes still alive after ${timeout}s, sending SIGKILL: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
    fi
    wait_until 10 pg_node_gone "$node" || die "$node: could not get rid of its processes / port $port"
  fi
}
pg_node_gone() { [[ -z $(data_dir_pids "$(pg_data "$1")") ]] && port_free "$(pg_port "$1")"; }

pg_stop() {
  local node=$1 data pid
  data=$(pg_data "$node")
  if ! pid=$(pg_pid "$node"); then
    if [[ -n $(data_dir_pids "$data") ]]; then
      pg_clean_stale "$node"
      log "$node: removed leftover processes"
    else
      log "$node is not running"
    fi
    return 0
  fi
  log "stopping $node (pid $pid, fast)"
  if ! (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t "$WAIT_TIMEOUT" -s stop >/dev/null 2>&1); then
    warn "$node did not stop in ${WAIT_TIMEOUT}s: immediate shutdown"
    kill -QUIT "$pid" 2>/dev/null || true
    wait_until 10 proc_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
  fi
  pg_wait_dead "$node" 15
  log "$node stopped"
}

pg_kill() {
  local node=$1 pid
  if ! pid=$(pg_pid "$node"); then
    log "$node is not running"
    return 0
  fi
  log "kill -9 $node postmaster (pid $pid)"
  kill -KILL "$pid"
  wait_reaped "$pid"
  # children notice the postmaster's death and exit by themselves
  pg_wait_dead "$node" 30
  log "$node killed (stale $(pg_data "$node")/postmaster.pid left behind, as after a crash)"
}

replica_valid() {
  local psys rsys
  [[ -f $REPLICA_DATA/global/pg_control && -f $REPLICA_DATA/PG_VERSION ]] || { echo "no complete data directory"; return 1; }
  [[ -f $STATE_DIR/replica.cloned ]] || { echo "the last clone did not finish"; return 1; }
  [[ -f $REPLICA_DATA/standby.signal ]] || { echo "it is no longer a standby (standby.signal missing: promoted?)"; return 1; }
  grep -q "port=$PRIMARY_PORT" "$REPLICA_DATA/postgresql.auto.conf" 2>/dev/null \
    || { echo "its primary_conninfo does not point to port $PRIMARY_PORT"; return 1; }
  grep -qE "sslmode=('')?verify-full" "$REPLICA_DATA/postgresql.auto.conf" 2>/dev/null \
    || { echo "its primary_conninfo does not stream over verified TLS (a stack from before TLS)"; return 1; }
  if [[ -f $PRIMARY_DATA/global/pg_control ]]; then
    psys=$(pg_sysid "$PRIMARY_DATA")
    rsys=$(pg_sysid "$REPLICA_DATA")
    [[ $psys == "$rsys" ]] || { echo "it was cloned from another primary (system id $rsys != $psys)"; return 1; }
  fi
  return 0
}

replica_clone() {
  { pg_pid primary >/dev/null && pg_ready primary; } \
    || die "the primary must be running to (re)create the replica: run 'docker/stack.sh start primary' (or 'up')"
  if pg_pid replica >/dev/null || [[ -n $(data_dir_pids "$REPLICA_DATA") ]]; then
    pg_stop replica
  fi
  rm -f "$STATE_DIR/replica.cloned"
  rm -rf "$REPLICA_DATA"
  mkdir -m 700 "$REPLICA_DATA"
  [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$REPLICA_DATA"
  # a slot from an earlier replica would keep WAL forever / be "active"
  pg_super primary postgres -c \
    "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$REPL_SLOT' and not active" >/dev/null \
    || warn "could not drop the old replication slot $REPL_SLOT"
  log "cloning the replica from the primary (pg_basebackup -R -X stream -c fast, slot $REPL_SLOT)"
  if ! (cd "$STACK_DIR" && as_svc env PGPASSWORD="$REPL_PASSWORD" PGCONNECT_TIMEOUT=5 \
        timeout "$BASEBACKUP_TIMEOUT" "$PG_BIN/pg_basebackup" -D "$REPLICA_DATA" -R -X stream -c fast \
        -C -S "$REPL_SLOT" -h "$HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" -w \
        >"$LOG_DIR/basebackup.log" 2>&1); then
    tail_log "$LOG_DIR/basebackup.log"
    die "pg_basebackup failed"
  fi
  grep -q primary_conninfo "$REPLICA_DATA/postgresql.auto.conf" || die "pg_basebackup -R wrote no primary_conninfo"
  grep -qE "sslmode=('')?verify-full" "$REPLICA_DATA/postgresql.auto.conf" || die "pg_basebackup -R wrote a primary_conninfo without sslmode=verify-full"
  rm -f "$REPLICA_DATA/postmaster.opts"
  pg_write_config replica || true
  echo "$(date -u +%FT%TZ) $(pg_sysid "$REPLICA_DATA")" >"$STATE_DIR/replica.cloned"
  log "replica cloned into $REPLICA_DATA"
  CHANGED=1
}

# Make NODE exist, configured and running.
ensure_pg() {
  local node=$1 data reason
  data=$(pg_data "$node")
  check_pg_version "$data"
  if [[ $node == primary ]]; then
    pg_initialized primary || pg_init_primary
  else
    if ! reason=$(replica_valid); then
      if [[ -d $REPLICA_DATA ]]; then
        log "replica must be re-created: $reason"
      else
        log "replica does not exist yet"
      fi
      replica_clone
    fi
  fi
  if pg_write_config "$node"; then
    log "$node: configuration written"
    if pg_pid "$node" >/dev/null; then
      log "$node: configuration changed while running: restarting it"
      pg_stop "$node"
    fi
    CHANGED=1
  fi
  pg_start "$node"
  if [[ $node == primary ]]; then
    pg_bootstrap
  fi
}

# streaming check (primary side)
replica_streaming() {
  [[ $(pg_super primary postgres -c "select count(*) from pg_stat_replication where state = 'streaming'" 2>/dev/null || echo 0) -ge 1 ]]
}

wait_streaming() {
  pg_pid primary >/dev/null && pg_pid replica >/dev/null || return 0
  # after a failover the roles may be swapped (or a fenced old primary runs): nothing to wait for
  [[ $(pg_role primary) == primary && $(pg_role replica) == standby ]] || return 0
  if wait_until 20 replica_streaming; then
    log "replica is streaming from the primary"
  else
    warn "the replica is not streaming from the primary after 20s (see $LOG_DIR/replica.log)"
  fi
}

# ----------------------------------------------------------------------------
# After a failover: rejoin a former primary as a standby of the new one
# ----------------------------------------------------------------------------
other_pg() { if [[ $1 == primary ]]; then echo replica; else echo primary; fi; }

# rejoin_follow NODE SRC_PORT: standby.signal + primary_conninfo of the new primary
# (pg_rewind and pg_basebackup copy the source's auto.conf) and the stack's config.
rejoin_follow() {
  local node=$1 src_port=$2 data
  data=$(pg_data "$node")
  as_svc sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' "$data/postgresql.auto.conf"
  printf "primary_conninfo = 'host=%s port=%s user=%s password=%s application_name=stack_%s sslmode=verify-full sslrootcert=%s'\nprimary_slot_name = '%s'\n" \
    "$HOST" "$src_port" "$REPL_USER" "$REPL_PASSWORD" "$node" "$TLS_CA_CRT" "$REPL_SLOT" | as_svc tee -a "$data/postgresql.auto.conf" >/dev/null
  as_svc touch "$data/standby.signal"
  rm -f "$data/postmaster.opts"
  pg_write_config "$node" || true
}

# rejoin_basebackup NODE OTHER SRC_PORT: NODE becomes a fresh copy of OTHER and starts.
rejoin_basebackup() {
  local node=$1 other=$2 src_port=$3 data
  data=$(pg_data "$node")
  rm -rf "$data"
  mkdir -m 700 "$data"
  if [[ $EUID -eq 0 ]]; then chown "$SVC_USER:" "$data"; fi
  (cd "$STACK_DIR" && as_svc env PGPASSWORD="$REPL_PASSWORD" PGCONNECT_TIMEOUT=5 \
      timeout "$BASEBACKUP_TIMEOUT" "$PG_BIN/pg_basebackup" -D "$data" -X stream -c fast \
      -h "$HOST" -p "$src_port" -U "$REPL_USER" -w >"$LOG_DIR/basebackup-$node.log" 2>&1) \
    || { tail_log "$LOG_DIR/basebackup-$node.log"; die "pg_basebackup of $other failed"; }
  rejoin_follow "$node" "$src_port"
  pg_start "$node"
}


# Makes NODE a streaming standby of the other PostgreSQL node (which must be the
# primary now): pg_rewind from it (the clusters use data checksums), or a fresh
# base backup when rewinding is impossible. Leaves NODE running.
pg_rejoin() {
  local node=$1 other data src_port
  other=$(other_pg "$node")
  data=$(pg_data "$node")
  src_port=$(pg_port "$other")
  { pg_pid "$other" >/dev/null && pg_ready "$other" && [[ $(pg_role "$other") == primary ]]; } \
    || die "rejoin $node: $other must be running as the primary (promote it first)"
  if pg_pid "$node" >/dev/null || [[ -n $(data_dir_pids "$data") ]]; then
    pg_stop "$node"
  fi
  pg_super "$other" postgres -c \
    "select pg_create_physical_replication_slot('$REPL_SLOT') where not exists (select 1 from pg_replication_slots where slot_name = '$REPL_SLOT')" >/dev/null \
    || warn "could not create the replication slot $REPL_SLOT on $other"
  log "rewinding $node to follow $other (pg_rewind)"
  if (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_rewind" -D "$data" \
        --source-server="host=$RUN_DIR port=$src_port user=postgres dbname=postgres" \
        >"$LOG_DIR/rewind-$node.log" 2>&1); then
    rejoin_follow "$node" "$src_port"
    # A rewound node can still fail to recover (e.g. its minimum recovery point lies on a
    # timeline the new primary's history does not contain): then a fresh copy it is. It
    # can also start and never stream ("requested starting point ... is not in this
    # server's history": it replayed past the fork point), which the rejoin's callers
    # would only find out later: the same fresh copy then.
    if ! (pg_start "$node"); then
      warn "$node did not start after pg_rewind: taking a fresh base backup of $other instead"
      pg_stop "$node" || true
      rejoin_basebackup "$node" "$other" "$src_port"
    elif ! wait_until "$REWIND_STREAM_TIMEOUT" node_streaming_stable "$node"; then
      warn "$node does not stream from $other after pg_rewind (see $(pg_log "$node")): taking a fresh base backup of $other instead"
      pg_stop "$node" || true
      rejoin_basebackup "$node" "$other" "$src_port"
    fi
  else
    tail_log "$LOG_DIR/rewind-$node.log"
    warn "pg_rewind failed: taking a fresh base backup of $other instead"
    rejoin_basebackup "$node" "$other" "$src_port"
  fi
  if wait_until 30 node_streaming "$node"; then
    log "$node rejoined as a standby of $other (timeline $(pg_super "$node" postgres -c 'select timeline_id from pg_control_checkpoint()'))"
  else
    warn "$node runs but is not streaming from $other yet (see $(pg_log "$node"))"
  fi
}

node_streaming() {
  [[ $(pg_super "$1" postgres -c "select coalesce((select status from pg_stat_wal_receiver), 'none')" 2>/dev/null) == streaming ]]
}

# Streaming, and still by the same WAL receiver 2 s later: after pg_rewind a receiver can
# show `streaming` for a moment and then die ("requested starting point ... is not in this
# server's history"), restarted every second by a new one (seen in a CI run, 2026-12-03).
node_streaming_stable() {
  local q="select pid from pg_stat_wal_receiver where status = 'streaming'" a b
  a=$(pg_super "$1" postgres -c "$q" 2>/dev/null) || return 1
  [[ -n $a ]] || return 1
  sleep 2
  b=$(pg_super "$1" postgres -c "$q" 2>/dev/null) || return 1
  [[ $a == "$b" ]]
}

# SIGSTOP / SIGCONT every process of a node: a hung server (not a crash) for fault tests.
pg_signal_all() {
  local node=$1 sig=$2 pids=()
  mapfile -t pids < <(data_dir_pids "$(pg_data "$node")")
  [[ ${#pids[@]} -gt 0 ]] || die "$node is not running"
  kill "-$sig" "${pids[@]}"
  log "$node: SIG$sig sent to ${#pids[@]} processes"
}

# ----------------------------------------------------------------------------
# Extra replicas (a second standby for routing tests), by port
# ----------------------------------------------------------------------------
extra_data() { echo "$STACK_DIR/extra-$1"; }

extra_pids() { data_dir_pids "$(extra_data "$1")"; }

extra_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$1" -t 2 >/dev/null 2>&1; }

# add-replica PORT: clone a further standby of the primary node on PORT and start it.
extra_add() {
  local port=$1 data slot
  data=$(extra_data "$port")
  slot=stack_extra_$port
  { pg_pid primary >/dev/null && [[ $(pg_role primary) == primary ]]; } \
    || die "add-replica: the primary node must be running as the primary"
  port_taken "$port" && die_port "extra replica" "$port" "the add-replica PORT"
  if [[ ! -f $data/PG_VERSION ]]; then
    rm -rf "$data"
    mkdir -m 700 "$data"
    [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$data"
    pg_super primary postgres -c \
      "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = '$slot' and not active" >/dev/null || true
    log "cloning an extra replica on port $port (pg_basebackup, slot $slot)"
    (cd "$STACK_DIR" && as_svc env PGPASSWORD="$REPL_PASSWORD" PGCONNECT_TIMEOUT=5 \
        timeout "$BASEBACKUP_TIMEOUT" "$PG_BIN/pg_basebackup" -D "$data" -R -X stream -c fast \
        -C -S "$slot" -h "$HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" -w >"$LOG_DIR/basebackup-extra-$port.log" 2>&1) \
      || { tail_log "$LOG_DIR/basebackup-extra-$port.log"; die "pg_basebackup for the extra replica failed"; }
    # the clone holds the writer's stack.conf: keep its memory size unless STACK_PG_SHARED_BUFFERS says otherwise
    local cloned_sb
    cloned_sb=$(sed -n "s/^shared_buffers = '\([0-9]*[kMG]B\)'$/\1/p" "$data/stack.conf" 2>/dev/null | head -n 1)
    [[ -z ${STACK_PG_SHARED_BUFFERS:-} && -n $cloned_sb ]] && PG_SHARED_BUFFERS=$cloned_sb
    pg_conf_content replica | sed "s/^port = .*/port = $port/" | as_svc tee "$data/stack.conf" >/dev/null
    rm -f "$data/postmaster.opts" "$data/postmaster.pid"
  fi
  extra_start "$port"
}

extra_start() {
  local port=$1 data
  data=$(extra_data "$port")
  [[ -f $data/PG_VERSION ]] || die "no extra replica on port $port (add-replica first)"
  if [[ -n $(extra_pids "$port") ]] && extra_ready "$port"; then
    log "extra replica on $port already running"
    return 0
  fi
  # after a kill -9: the stale pid file and socket lock would block the start
  rm -f "$data/postmaster.pid" "$RUN_DIR/.s.PGSQL.$port" "$RUN_DIR/.s.PGSQL.$port.lock"
  if ! (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$data" -l "$LOG_DIR/extra-$port.log" -w -t "$WAIT_TIMEOUT" -s start >/dev/null); then
    tail_log "$LOG_DIR/extra-$port.log"
    if tail -n 20 "$LOG_DIR/extra-$port.log" 2>/dev/null | grep -q 'could not bind'; then
      die_port "extra replica" "$port" "the add-replica PORT"
    fi
    die "extra replica on $port failed to start"
  fi
  wait_until "$WAIT_TIMEOUT" extra_ready "$port" || die "extra replica on $port not ready"
  log "extra replica ready on $HOST:$port"
}

extra_kill() {
  local port=$1 pids=()
  mapfile -t pids < <(extra_pids "$port")
  [[ ${#pids[@]} -gt 0 ]] || { log "extra replica on $port is not running"; return 0; }
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait_until 30 port_free "$port" || die "extra replica on $port: port still busy"
  log "extra replica on $port killed"
}

extra_drop() {
  local port=$1
  extra_kill "$port"
  rm -rf "$(extra_data "$port")"
  pg_super primary postgres -c \
    "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'stack_extra_$port' and not active" >/dev/null || true
  log "extra replica on $port removed"
}

