# shellcheck shell=bash
# docker/stack/common.sh — logging, processes, ports, files, directories and the stack lock: sourced by docker/stack.sh (its settings and helpers are in scope).

# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------
log()  { printf '[stack] %s\n' "$*"; }
warn() { printf '[stack] WARNING: %s\n' "$*" >&2; }
die()  { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed 's/^/[stack] /' >&2 <<EOF
usage: $(basename "$0") COMMAND [NODE]
  up                 install / initialise / start everything, wait until ready, print settings
  down               stop everything (escalates to SIGKILL; verifies nothing is left)
  status             one line per node; exit 0 if all up, 3 otherwise
  env                print 'export VAR=value' lines:  eval "\$(bash docker/stack.sh env)"
  start NODE         start one node (waits until ready)
  stop NODE          graceful stop of one node
  restart NODE       stop + start
  kill NODE          SIGKILL the node's main process (simulates a crash)
  rebuild replica    wipe the replica and re-clone it from the primary
  rejoin NODE        after a failover: make the former primary NODE a standby of the new
                     primary (pg_rewind, or a fresh base backup when that fails)
  pause NODE         SIGSTOP every process of a PostgreSQL node (a hung server)
  add-replica PORT   clone and start a further standby of the primary on PORT (tests)
  start-replica PORT / kill-replica PORT / drop-replica PORT   that standby
  resume NODE        SIGCONT them
  backup [TYPE]      a pgBackRest backup now: full (default), diff or incr
  dr-prepare         disaster recovery: stop the PostgreSQL nodes, move their data folders
                     aside (to moved-aside/ in the stack folder, never deleted)
  dr-restore LABEL default|immediate|time|lsn [TARGET]
                     restore backup set LABEL into the empty primary folder, replay to
                     TARGET, promote (then 'rebuild replica'); run by 'npm run dr:restore'
NODE: ${NODES[*]}
EOF
  exit 2
}

check_settings() {
  local p
  [[ $TLS_ONLY == 0 || $TLS_ONLY == 1 ]] || die "STACK_TLS_ONLY must be 1 (default) or 0, got '$TLS_ONLY'"
  for p in "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT" "$REDIS_PLAIN_PORT" "$WAIT_TIMEOUT" "$BASEBACKUP_TIMEOUT"; do
    [[ $p =~ ^[0-9]+$ ]] || die "not a number: '$p' (check STACK_* port/timeout variables)"
  done
  if [[ $(printf '%s\n' "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT" | sort -u | wc -l) -ne 4 ]]; then
    die "the four stack ports must differ: $PRIMARY_PORT $REPLICA_PORT $PGB_PORT $REDIS_PORT"
  fi
  # A port inside the kernel's ephemeral range can be held, at the moment a node starts,
  # by any outgoing connection of the machine: the bind then fails by chance.
  local range lo hi
  if range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null); then
    read -r lo hi <<<"$range"
    for p in "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT"; do
      if (( p >= lo && p <= hi )); then
        warn "port $p lies in the ephemeral port range $lo-$hi (net.ipv4.ip_local_port_range): an outgoing connection may hold it when a node starts; choose a port below $lo"
      fi
    done
  fi
  # STACK_DIR ends up inside config files (archive_command, ini files): keep it simple.
  [[ $STACK_DIR =~ ^[A-Za-z0-9._/+@:,=-]+$ ]] \
    || die "STACK_DIR '$STACK_DIR' contains spaces/quotes/special characters; set STACK_DIR to a plain path"
  # Unix socket paths are limited to 107 bytes.
  (( ${#RUN_DIR} + 18 < 107 )) || die "STACK_DIR is too long for unix sockets ($RUN_DIR); set STACK_DIR to a shorter path"
}

# Run a command as the service user (postgres when we are root).
# fd 9 (the stack lock) is closed so that daemons do not inherit the lock.
as_svc() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u "$SVC_USER" -- "$@" 9>&-
  else
    "$@" 9>&-
  fi
}

# wait_until SECONDS CMD... : poll CMD every 0.2 s; 1 on timeout.
wait_until() {
  local timeout=$1 end
  shift
  end=$((SECONDS + timeout))
  until "$@"; do
    (( SECONDS >= end )) && return 1
    sleep 0.2
  done
  return 0
}

proc_alive() { [[ -n ${1:-} && $1 =~ ^[0-9]+$ && -d /proc/$1 ]]; }
proc_comm()  { cat "/proc/$1/comm" 2>/dev/null || true; }
proc_cwd()   { readlink "/proc/$1/cwd" 2>/dev/null || true; }
proc_cmd()   { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }
proc_gone()  { ! proc_alive "$1"; }   # a zombie is not gone: its pid is still taken
proc_zombie() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [[ $st == Z ]]; }
# a SIGKILLed daemon is re-parented to pid 1, which may reap it late; postgres
# and pgbouncer treat a zombie's pid as "still running" (kill(pid, 0) succeeds)
wait_reaped() { proc_alive "$1" || return 0; wait_until "${2:-15}" proc_gone "$1" || warn "pid $1 is still not reaped (zombie)"; }
pids_gone()  { local p; for p in "$@"; do proc_alive "$p" && return 1; done; return 0; }

port_listening() {
  local port=$1
  if command -v ss >/dev/null 2>&1; then
    [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null
  fi
}
port_free() { ! port_listening "$1"; }

port_owner() {
  command -v ss >/dev/null 2>&1 || { echo "?"; return 0; }
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true
}

# port_taken PORT: any TCP socket of this machine bound to PORT, listening or not
# (an outgoing connection whose local port is PORT blocks a bind just the same).
port_taken() {
  port_listening "$1" && return 0
  command -v ss >/dev/null 2>&1 || return 1
  [[ -n $(ss -Htan "sport = :$1" 2>/dev/null | awk '$1 != "TIME-WAIT"') ]]
}

# port_report PORT: who holds PORT and how, for an error message.
port_report() {
  local port=$1 lines
  command -v ss >/dev/null 2>&1 || { echo "port $port is in use (install iproute2 for details)"; return 0; }
  lines=$(ss -Htanp "sport = :$port" 2>/dev/null | awk '$1 != "TIME-WAIT" {printf "%s%s %s -> %s %s", (n++ ? "; " : ""), $1, $4, $5, $6}')
  echo "port $port is in use: ${lines:-no socket seen now (it was released again)}"
}

# die_port NODE PORT VAR: a node cannot bind its port.
die_port() {
  die "$1 cannot bind 127.0.0.1:$2: $(port_report "$2"). Stop what holds it or set $3 to a free port (below the ephemeral range $(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null))"
}

read_pidfile() {
  local f=$1 pid
  [[ -r $f ]] || return 1
  pid=$(head -n1 "$f" 2>/dev/null | tr -d '[:space:]') || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# install_file DEST MODE < content : writes only when different. 0 = changed.
install_file() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "$dest.tmp.XXXXXX")
  cat >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    return 1
  fi
  chmod "$mode" "$tmp"
  [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$tmp"
  mv -f "$tmp" "$dest"
  return 0
}

tail_log() {
  local f=$1
  [[ -f $f ]] || return 0
  printf '[stack] --- last lines of %s ---\n' "$f" >&2
  tail -n 15 "$f" | sed 's/^/[stack]   /' >&2
}

# Processes that belong to the stack: right binary and (cwd inside STACK_DIR
# or STACK_DIR on the command line). Never matches shells sitting in .stack.
stack_pids() {
  local d pid comm cwd
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" ]] && continue
    read -r comm 2>/dev/null <"$d/comm" || continue
    case $comm in postgres|postmaster|redis-server|pgbouncer|pg_basebackup) ;; *) continue ;; esac
    cwd=$(proc_cwd "$pid")
    if [[ $cwd == "$STACK_DIR" || $cwd == "$STACK_DIR"/* || $(proc_cmd "$pid") == *"$STACK_DIR/"* ]]; then
      echo "$pid"
    fi
  done
  return 0
}

# pids whose comm is $1 and whose cwd is $2
pids_by_comm_cwd() {
  local want=$1 dir=$2 d comm
  for d in /proc/[0-9]*; do
    read -r comm 2>/dev/null <"$d/comm" || continue
    [[ $comm == "$want" ]] || continue
    [[ $(readlink "$d/cwd" 2>/dev/null) == "$dir" ]] && echo "${d#/proc/}"
  done
  return 0
}

# All postgres processes (postmaster + children) of one data dir.
data_dir_pids() { pids_by_comm_cwd postgres "$1"; }

# ----------------------------------------------------------------------------
# Directories
# ----------------------------------------------------------------------------
check_traversable() {
  [[ $EUID -eq 0 ]] || return 0
  runuser -u "$SVC_USER" -- test -x "$STACK_DIR" -a -r "$STACK_DIR" && return 0
  local d=/ part
  local IFS=/
  for part in ${STACK_DIR#/}; do
    d=${d%/}/$part
    if ! runuser -u "$SVC_USER" -- test -x "$d"; then
      die "the '$SVC_USER' OS user cannot traverse $d ($(stat -c '%A %U:%G' "$d")); PostgreSQL runs as '$SVC_USER'. Fix with: chmod o+x $d  (or set STACK_DIR to a path '$SVC_USER' can reach)"
    fi
  done
  die "the '$SVC_USER' OS user cannot access $STACK_DIR"
}

prepare_dirs() {
  if [[ ! -d $STACK_DIR ]]; then
    mkdir -p "$STACK_DIR"
    STACK_DIR=$(cd "$STACK_DIR" && pwd -P)
  fi
  chmod 755 "$STACK_DIR"
  [[ -f $STACK_DIR/.gitignore ]] || printf '# created by docker/stack.sh: nothing in here is versioned\n*\n' >"$STACK_DIR/.gitignore"
  mkdir -p "$STATE_DIR"
  check_traversable
  local d
  for d in "$RUN_DIR" "$LOG_DIR" "$PGB_DIR" "$REDIS_DIR"; do
    mkdir -p "$d"
    chmod 755 "$d"
  done
  chmod 700 "$PGB_DIR"
  if [[ $EUID -eq 0 ]]; then
    for d in "$RUN_DIR" "$LOG_DIR" "$PGB_DIR" "$REDIS_DIR" "$PRIMARY_DATA" "$REPLICA_DATA"; do
      [[ -e $d ]] || continue
      if [[ -n $(find "$d" ! -user "$SVC_USER" -print -quit 2>/dev/null) ]]; then
        chown -R "$SVC_USER:" "$d"
      fi
    done
  fi
  tls_ensure || true
}

lock_stack() {
  if [[ ! -d $STACK_DIR ]]; then
    mkdir -p "$STACK_DIR"
    STACK_DIR=$(cd "$STACK_DIR" && pwd -P)
  fi
  exec 9>"$STACK_DIR/.lock"
  flock -w "$WAIT_TIMEOUT" 9 || die "another docker/stack.sh is running on $STACK_DIR (lock $STACK_DIR/.lock held for ${WAIT_TIMEOUT}s)"
}

