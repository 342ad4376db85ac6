# shellcheck shell=bash
# docker/stack/redis.sh — Redis with the spec's settings: sourced by docker/stack.sh (its settings and helpers are in scope).

# ----------------------------------------------------------------------------
# Redis
# ----------------------------------------------------------------------------
redis_pid() {
  local pid
  if pid=$(read_pidfile "$REDIS_PIDFILE") && proc_alive "$pid" \
     && [[ $(proc_comm "$pid") == redis-server && $(proc_cwd "$pid") == "$REDIS_DIR" ]]; then
    echo "$pid"
    return 0
  fi
  # pid file lost: look for a redis-server working in our dir
  pid=$(pids_by_comm_cwd redis-server "$REDIS_DIR" | head -n1)
  [[ -n $pid ]] && { echo "$pid"; return 0; }
  return 1
}

# as the stack's admin user, over TLS (the password reaches redis-cli through its environment)
redis_cli() {
  REDISCLI_AUTH=$REDIS_ADMIN_PASSWORD timeout 5 redis-cli --tls --cacert "$TLS_CA_CRT" \
    -h "$HOST" -p "$REDIS_PORT" --user "$REDIS_ADMIN_USER" --no-auth-warning "$@"
}
redis_ready() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

# The service's ACL: every data, scripting, stream and pub/sub command on every key and
# channel, INFO for the monitoring, nothing of @dangerous otherwise (no CONFIG, FLUSHALL,
# KEYS, SHUTDOWN, DEBUG, MONITOR, ACL, REPLICAOF, ...).
REDIS_SERVICE_ACL='~* &* +@all -@dangerous +info'

sha256_hex() { printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }

redis_conf_content() {
  cat <<EOF
# Managed by docker/stack.sh: rewritten on every 'up'/'start'.
bind $HOST
# TLS only (docker/stack/tls.sh): no plain TCP port. Server certificate $(tls_fingerprint)
port $([[ $TLS_ONLY == 1 ]] && echo 0 || echo "$REDIS_PLAIN_PORT")
tls-port $REDIS_PORT
tls-cert-file $TLS_SERVER_CRT
tls-key-file $TLS_SERVER_KEY
tls-ca-cert-file $TLS_CA_CRT
tls-auth-clients no
tls-protocols "TLSv1.2 TLSv1.3"
# ACL users (passwords as SHA-256 digests; the default user is off)
user default off resetchannels -@all
user $REDIS_USER on #$(sha256_hex "$REDIS_PASSWORD") resetchannels $REDIS_SERVICE_ACL
user $REDIS_ADMIN_USER on #$(sha256_hex "$REDIS_ADMIN_PASSWORD") ~* &* +@all
protected-mode yes
daemonize yes
supervised no
pidfile $REDIS_PIDFILE
dir $REDIS_DIR
logfile $LOG_DIR/redis.log
loglevel notice
maxmemory 1gb
maxmemory-policy allkeys-lru
save 900 1
dbfilename dump.rdb
appendonly no
EOF
}

redis_start() {
  local pid
  if redis_conf_content | install_file "$REDIS_CONF" 600; then
    log "redis: configuration written"
    CHANGED=1
    if redis_pid >/dev/null; then
      log "redis: configuration changed while running: restarting it"
      redis_stop
    fi
  fi
  if pid=$(redis_pid); then
    if wait_until "$WAIT_TIMEOUT" redis_ready; then
      log "redis already running (pid $pid, port $REDIS_PORT)"
      return 0
    fi
    die "redis (pid $pid) does not answer PING on port $REDIS_PORT"
  fi
  if [[ -e $REDIS_PIDFILE ]]; then
    warn "redis: removing stale pid file $REDIS_PIDFILE"
    rm -f "$REDIS_PIDFILE"
  fi
  if port_taken "$REDIS_PORT"; then
    die_port redis "$REDIS_PORT" STACK_REDIS_PORT
  fi
  log "starting redis on $HOST:$REDIS_PORT (log $LOG_DIR/redis.log)"
  (cd "$REDIS_DIR" && as_svc "$(find_bin redis-server)" "$REDIS_CONF") || { tail_log "$LOG_DIR/redis.log"; die "redis failed to start"; }
  wait_until "$WAIT_TIMEOUT" redis_ready || { tail_log "$LOG_DIR/redis.log"; die "redis does not answer PING after ${WAIT_TIMEOUT}s"; }
  log "redis ready (pid $(redis_pid || echo '?'), port $REDIS_PORT)"
  CHANGED=1
}

redis_gone() { ! redis_pid >/dev/null && port_free "$REDIS_PORT"; }

redis_stop() {
  local pid
  if ! pid=$(redis_pid); then
    log "redis is not running"
    return 0
  fi
  log "stopping redis (pid $pid, SHUTDOWN NOSAVE)"
  redis_cli shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$WAIT_TIMEOUT" proc_gone "$pid"; then
    warn "redis did not exit, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_reaped "$pid"
    rm -f "$REDIS_PIDFILE"
  fi
  wait_until 10 redis_gone || die "redis: port $REDIS_PORT still busy"
  log "redis stopped"
}

redis_kill() {
  local pid
  if ! pid=$(redis_pid); then
    log "redis is not running"
    return 0
  fi
  log "kill -9 redis (pid $pid)"
  kill -KILL "$pid"
  wait_reaped "$pid"
  wait_until 15 redis_gone || die "redis: port $REDIS_PORT still busy after kill"
  log "redis killed (stale pid file left behind)"
}

