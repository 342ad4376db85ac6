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

redis_cli() { timeout 5 redis-cli -h "$HOST" -p "$REDIS_PORT" "$@"; }
redis_ready() { [[ $(redis_cli ping 2>/dev/null) == PONG ]]; }

redis_conf_content() {
  cat <<EOF
# Managed by docker/stack.sh: rewritten on every 'up'/'start'.
bind $HOST
port $REDIS_PORT
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
  if redis_conf_content | install_file "$REDIS_CONF" 644; then
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

