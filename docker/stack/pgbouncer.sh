# shellcheck shell=bash
# docker/stack/pgbouncer.sh — PgBouncer in transaction pooling: sourced by docker/stack.sh (its settings and helpers are in scope).

# ----------------------------------------------------------------------------
# PgBouncer
# ----------------------------------------------------------------------------
pgb_pid() {
  local pid d
  if pid=$(read_pidfile "$PGB_PIDFILE") && proc_alive "$pid" \
     && [[ $(proc_comm "$pid") == pgbouncer && $(proc_cmd "$pid") == *"$PGB_INI"* ]]; then
    echo "$pid"
    return 0
  fi
  local comm
  for d in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$d/comm" || continue
    [[ $comm == pgbouncer ]] || continue
    pid=${d#/proc/}
    [[ $(proc_cmd "$pid") == *"$PGB_INI"* ]] && { echo "$pid"; return 0; }
  done
  return 1
}

pgb_psql() { # USER PASSWORD DB SQL
  PGPASSWORD=$2 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$HOST" -p "$PGB_PORT" -U "$1" -d "$3" -c "$4"
}
pgb_ready() { pgb_psql "$PGB_ADMIN_USER" "$PGB_ADMIN_PASSWORD" pgbouncer 'SHOW VERSION' >/dev/null 2>&1; }
pgb_rw_ok() { [[ $(pgb_psql "$DB_USER" "$DB_PASSWORD" "$PGB_DB_RW" 'select 1' 2>/dev/null) == 1 ]]; }
pgb_ro_ok() { [[ $(pgb_psql "$DB_USER" "$DB_PASSWORD" "$PGB_DB_RO" 'select inet_server_port()' 2>/dev/null) == "$REPLICA_PORT" ]]; }

pgb_ini_content() {
  cat <<EOF
;; Managed by docker/stack.sh: rewritten on every 'up'/'start'.
[databases]
$PGB_DB_RW = host=$HOST port=$PRIMARY_PORT dbname=$DB_NAME
$PGB_DB_RO = host=$HOST port=$REPLICA_PORT dbname=$DB_NAME
;; The e2e suite's PgBouncer test database (test/pgbouncer.e2e-spec.ts).
dbu_test_pgbouncer = host=$HOST port=$PRIMARY_PORT dbname=dbu_test_pgbouncer
dbu_test_pgbouncer_ro = host=$HOST port=$REPLICA_PORT dbname=dbu_test_pgbouncer
* = host=$HOST port=$PRIMARY_PORT

[pgbouncer]
listen_addr = $HOST
listen_port = $PGB_PORT
unix_socket_dir = $RUN_DIR
logfile = $LOG_DIR/pgbouncer.log
pidfile = $PGB_PIDFILE

auth_type = scram-sha-256
auth_file = $PGB_USERLIST
admin_users = $PGB_ADMIN_USER
stats_users = $DB_USER

pool_mode = transaction
default_pool_size = 20
min_pool_size = 5
reserve_pool_size = 5
reserve_pool_timeout = 3
max_client_conn = 1000
max_db_connections = 0
server_reset_query =
server_check_query = select 1
;; Failover time: PgBouncer waits this long before retrying a server that refused a
;; login (default 15 s, added to every failover's time to first write).
server_login_retry = 1
ignore_startup_parameters = extra_float_digits,options,statement_timeout,application_name

;; TLS (docker/stack/tls.sh): clients must use TLS; PostgreSQL's certificate and name are
;; verified. Server certificate $(tls_fingerprint)
client_tls_sslmode = $([[ $TLS_ONLY == 1 ]] && echo require || echo prefer)
client_tls_cert_file = $TLS_SERVER_CRT
client_tls_key_file = $TLS_SERVER_KEY
client_tls_ca_file = $TLS_CA_CRT
client_tls_protocols = tlsv1.2,tlsv1.3
server_tls_sslmode = verify-full
server_tls_ca_file = $TLS_CA_CRT
server_tls_protocols = tlsv1.2,tlsv1.3
EOF
}

pgb_userlist_content() {
  printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" "$PGB_ADMIN_USER" "$PGB_ADMIN_PASSWORD"
}

pgb_start() {
  local pid changed=0
  if pgb_ini_content | install_file "$PGB_INI" 600; then changed=1; fi
  if pgb_userlist_content | install_file "$PGB_USERLIST" 600; then changed=1; fi
  if [[ $changed -eq 1 ]]; then
    log "pgbouncer: configuration written"
    CHANGED=1
    if pgb_pid >/dev/null; then
      log "pgbouncer: configuration changed while running: restarting it"
      pgb_stop
    fi
  fi
  if pid=$(pgb_pid); then
    if wait_until "$WAIT_TIMEOUT" pgb_ready; then
      log "pgbouncer already running (pid $pid, port $PGB_PORT)"
      return 0
    fi
    die "pgbouncer (pid $pid) does not answer on port $PGB_PORT"
  fi
  if [[ -e $PGB_PIDFILE ]]; then
    warn "pgbouncer: removing stale pid file $PGB_PIDFILE"
    rm -f "$PGB_PIDFILE"
  fi
  if port_taken "$PGB_PORT"; then
    die_port pgbouncer "$PGB_PORT" STACK_PGBOUNCER_PORT
  fi
  rm -f "$RUN_DIR/.s.PGSQL.$PGB_PORT" "$RUN_DIR/.s.PGSQL.$PGB_PORT.lock"
  log "starting pgbouncer on $HOST:$PGB_PORT (log $LOG_DIR/pgbouncer.log)"
  # max_client_conn=1000 needs more file descriptors than the usual 1024
  if ! (cd "$PGB_DIR" && { ulimit -n 4096 2>/dev/null || true; } && as_svc "$PGB_BIN" -d -q "$PGB_INI"); then
    tail_log "$LOG_DIR/pgbouncer.log"
    die "pgbouncer failed to start"
  fi
  wait_until "$WAIT_TIMEOUT" pgb_ready || { tail_log "$LOG_DIR/pgbouncer.log"; die "pgbouncer admin console not answering after ${WAIT_TIMEOUT}s"; }
  log "pgbouncer ready (pid $(pgb_pid || echo '?'), port $PGB_PORT)"
  CHANGED=1
}

pgb_gone() { ! pgb_pid >/dev/null && port_free "$PGB_PORT"; }

pgb_stop() {
  local pid
  if ! pid=$(pgb_pid); then
    log "pgbouncer is not running"
    return 0
  fi
  log "stopping pgbouncer (pid $pid, SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$WAIT_TIMEOUT" proc_gone "$pid"; then
    warn "pgbouncer did not exit, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_reaped "$pid"
    rm -f "$PGB_PIDFILE"
  fi
  wait_until 10 pgb_gone || die "pgbouncer: port $PGB_PORT still busy"
  log "pgbouncer stopped"
}

pgb_kill() {
  local pid
  if ! pid=$(pgb_pid); then
    log "pgbouncer is not running"
    return 0
  fi
  log "kill -9 pgbouncer (pid $pid)"
  kill -KILL "$pid"
  wait_reaped "$pid"
  wait_until 15 pgb_gone || die "pgbouncer: port $PGB_PORT still busy after kill"
  log "pgbouncer killed (stale pid file left behind)"
}

# pgbouncer end-to-end checks (needs the PG nodes)
pgb_verify() {
  pgb_pid >/dev/null || return 0
  local what db check node
  for what in "primary:$PGB_DB_RW:pgb_rw_ok" "replica:$PGB_DB_RO:pgb_ro_ok"; do
    IFS=: read -r node db check <<<"$what"
    pg_pid "$node" >/dev/null || continue
    "$check" && continue
    # after a node outage pgbouncer refuses logins for server_login_retry (15 s)
    log "waiting for pgbouncer to serve '$db' again (pgbouncer retries failed server logins after server_login_retry)"
    wait_until "$WAIT_TIMEOUT" "$check" || { tail_log "$LOG_DIR/pgbouncer.log"; die "cannot query '$db' through pgbouncer as $DB_USER"; }
    log "pgbouncer serves '$db'"
  done
}

