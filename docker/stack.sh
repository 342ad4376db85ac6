#!/usr/bin/env bash
# docker/stack.sh — local replica of the production data stack, run from the
# machine's own binaries (no Docker engine needed):
#
#   PostgreSQL primary  127.0.0.1:${STACK_PG_PRIMARY_PORT:-55432}  (streaming + WAL archive)
#   PostgreSQL replica  127.0.0.1:${STACK_PG_REPLICA_PORT:-55433}  (hot standby, physical slot)
#   PgBouncer           127.0.0.1:${STACK_PGBOUNCER_PORT:-56432}   (transaction pooling)
#   Redis               127.0.0.1:${STACK_REDIS_PORT:-56379}
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
#
# Environment overrides: STACK_DIR, STACK_PG_PRIMARY_PORT, STACK_PG_REPLICA_PORT,
# STACK_PGBOUNCER_PORT, STACK_REDIS_PORT, STACK_PG_SHARED_BUFFERS (default 3GB: a 100,000-recipe HNSW index and its vectors, ~1.6 GB, stay in memory),
# STACK_PG_BIN (a PostgreSQL bin dir), STACK_WAIT_TIMEOUT (seconds, default 60),
# STACK_BASEBACKUP_TIMEOUT (seconds, default 300).
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
PRIMARY_PORT=${STACK_PG_PRIMARY_PORT:-55432}
REPLICA_PORT=${STACK_PG_REPLICA_PORT:-55433}
PGB_PORT=${STACK_PGBOUNCER_PORT:-56432}
REDIS_PORT=${STACK_REDIS_PORT:-56379}
PG_SHARED_BUFFERS=${STACK_PG_SHARED_BUFFERS:-3GB}
WAIT_TIMEOUT=${STACK_WAIT_TIMEOUT:-60}
BASEBACKUP_TIMEOUT=${STACK_BASEBACKUP_TIMEOUT:-300}
PG_DEFAULT_MAJOR=15

DB_NAME=recipes
DB_USER=app
DB_PASSWORD=app
REPL_USER=replicator
REPL_PASSWORD=replicator
REPL_SLOT=stack_replica
PGB_DB_RW=recipes
PGB_DB_RO=recipes_ro
PGB_ADMIN_USER=pgbouncer_admin
PGB_ADMIN_PASSWORD=pgbouncer_admin

RUN_DIR=$STACK_DIR/run
LOG_DIR=$STACK_DIR/logs
STATE_DIR=$STACK_DIR/state
ARCHIVE_DIR=$STACK_DIR/wal-archive
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
NODE: ${NODES[*]}
EOF
  exit 2
}

check_settings() {
  local p
  for p in "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT" "$WAIT_TIMEOUT" "$BASEBACKUP_TIMEOUT"; do
    [[ $p =~ ^[0-9]+$ ]] || die "not a number: '$p' (check STACK_* port/timeout variables)"
  done
  if [[ $(printf '%s\n' "$PRIMARY_PORT" "$REPLICA_PORT" "$PGB_PORT" "$REDIS_PORT" | sort -u | wc -l) -ne 4 ]]; then
    die "the four stack ports must differ: $PRIMARY_PORT $REPLICA_PORT $PGB_PORT $REDIS_PORT"
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
# Packages
# ----------------------------------------------------------------------------
need_root_for() {
  [[ $EUID -eq 0 ]] && return 0
  [[ ${#SUDO[@]} -gt 0 ]] && "${SUDO[@]}" true 2>/dev/null && return 0
  die "need root (or passwordless sudo) to $*"
}

apt_update_once() {
  [[ $APT_UPDATED -eq 1 ]] && return 0
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install the packages by hand (Debian/Ubuntu only)"
  need_root_for "run apt-get"
  log "apt-get update"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -qq update 9>&- \
    || die "apt-get update failed"
  APT_UPDATED=1
}

apt_install() {
  [[ $# -gt 0 ]] || return 0
  apt_update_once
  log "apt-get install $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -y -qq \
    --no-install-recommends install "$@" 9>&- || die "apt-get install $* failed"
  CHANGED=1
}

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]; }

apt_candidate() {
  local c
  c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}') || true
  [[ -n $c && $c != "(none)" ]]
}

find_bin() {
  local name=$1 d
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  for d in /usr/sbin /usr/bin /sbin /usr/local/bin /usr/local/sbin; do
    [[ -x $d/$name ]] && { echo "$d/$name"; return 0; }
  done
  return 1
}

# Sets PG_BIN / PG_MAJOR. 15 if present, else the highest installed major.
resolve_pg_bin() {
  local cand=
  if [[ -n ${STACK_PG_BIN:-} ]]; then
    [[ -x $STACK_PG_BIN/postgres ]] || return 1
    cand=$STACK_PG_BIN
  elif [[ -x /usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin/postgres ]]; then
    cand=/usr/lib/postgresql/$PG_DEFAULT_MAJOR/bin
  else
    local d
    for d in /usr/lib/postgresql/*/bin; do
      if [[ -x $d/postgres ]]; then cand+=$d$'\n'; fi
    done
    cand=$(printf '%s' "$cand" | sort -V | tail -n1)
    [[ -n $cand ]] || return 1
  fi
  PG_BIN=${cand%/}
  PG_MAJOR=$("$PG_BIN/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
  [[ $PG_MAJOR =~ ^[0-9]+$ ]] || die "cannot determine the PostgreSQL major of $PG_BIN"
}

stop_packaged_pgbouncer() {
  # apt starts the system pgbouncer (6432) on install; this stack must not run it.
  log "stopping the system pgbouncer service that apt just started (port 6432)"
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl stop pgbouncer >/dev/null 2>&1 9>&- || true
  fi
  if port_listening 6432 && command -v service >/dev/null 2>&1; then
    service pgbouncer stop >/dev/null 2>&1 9>&- || true
  fi
  if port_listening 6432; then
    local pid
    for pid in $(pgrep -x pgbouncer 2>/dev/null || true); do
      if [[ $(proc_cmd "$pid") == *"/etc/pgbouncer/"* ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    wait_until 10 port_free 6432 || warn "the system pgbouncer still listens on 6432"
  fi
}

ensure_packages() {
  local pkgs=() pgb_before=0
  resolve_pg_bin || pkgs+=("postgresql-$PG_DEFAULT_MAJOR")
  find_bin redis-server >/dev/null || pkgs+=(redis-server)
  find_bin redis-cli >/dev/null || pkgs+=(redis-tools)
  if ! find_bin pgbouncer >/dev/null; then
    pkgs+=(pgbouncer)
    port_listening 6432 && pgb_before=1
  fi
  if [[ ${#pkgs[@]} -gt 0 ]]; then
    apt_install "${pkgs[@]}"
    if [[ " ${pkgs[*]} " == *" pgbouncer "* && $pgb_before -eq 0 ]] && port_listening 6432; then
      stop_packaged_pgbouncer
    fi
  fi
  if ! resolve_pg_bin; then
    [[ -n ${STACK_PG_BIN:-} ]] && die "STACK_PG_BIN=$STACK_PG_BIN has no postgres binary"
    # e.g. a distribution without postgresql-15: take its default server
    apt_install postgresql
    resolve_pg_bin || die "no PostgreSQL server found under /usr/lib/postgresql after installing"
  fi
  local missing=()
  for b in psql pg_isready pg_basebackup pg_ctl initdb pg_controldata; do
    [[ -x $PG_BIN/$b ]] || missing+=("$b")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "postgresql-client-$PG_MAJOR" "postgresql-$PG_MAJOR"
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  PGB_BIN=$(find_bin pgbouncer) || die "pgbouncer binary not found"
  if [[ $EUID -eq 0 ]] && ! id -u "$SVC_USER" >/dev/null 2>&1; then
    die "OS user '$SVC_USER' does not exist (it comes with the postgresql packages)"
  fi
  ensure_pgvector
}

pg_sharedir() {
  local s
  s=$("$PG_BIN/pg_config" --sharedir 2>/dev/null) || s=/usr/share/postgresql/$PG_MAJOR
  echo "$s"
}

ensure_pgvector() {
  local sharedir
  sharedir=$(pg_sharedir)
  [[ -f $sharedir/extension/vector.control ]] && return 0
  log "pgvector is not installed for PostgreSQL $PG_MAJOR"
  need_root_for "install pgvector"
  apt_update_once
  if apt_candidate "postgresql-$PG_MAJOR-pgvector"; then
    apt_install "postgresql-$PG_MAJOR-pgvector"
  else
    build_pgvector
  fi
  sharedir=$(pg_sharedir)
  [[ -f $sharedir/extension/vector.control ]] || die "pgvector install finished but $sharedir/extension/vector.control is missing"
  CHANGED=1
}

# Debian 12 ships no pgvector package: build it from Debian 13's source package,
# fetched through a PRIVATE apt configuration (system sources/lists untouched).
build_pgvector() {
  local suite=${STACK_PGVECTOR_SUITE:-trixie}
  local mirror=${STACK_PGVECTOR_MIRROR:-http://deb.debian.org/debian}
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  local deps=() p
  for p in "postgresql-server-dev-$PG_MAJOR" build-essential dpkg-dev; do
    pkg_installed "$p" || deps+=("$p")
  done
  apt_install "${deps[@]}"
  [[ -f $keyring ]] || apt_install debian-archive-keyring

  log "building pgvector from Debian '$suite' sources in $BUILD_DIR"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$BUILD_DIR/download"
  printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$APT_DIR/sources.list"
  # apt downloads as the unprivileged _apt user when it can write the target
  if id -u _apt >/dev/null 2>&1 && [[ $EUID -eq 0 ]]; then
    chown -R _apt "$APT_DIR/lists" "$BUILD_DIR/download"
  fi
  local aopts=(
    -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Get::List-Cleanup=0"
    -o "DPkg::Lock::Timeout=120"
  )
  "${SUDO[@]}" apt-get "${aopts[@]}" -qq update 9>&- || die "private apt-get update ($suite deb-src) failed"
  rm -f "$BUILD_DIR"/download/pgvector_*
  (cd "$BUILD_DIR/download" && "${SUDO[@]}" apt-get "${aopts[@]}" -qq source --download-only pgvector 9>&-) \
    || die "apt-get source --download-only pgvector failed"
  local f tarball=
  for f in "$BUILD_DIR"/download/pgvector_*.orig.tar.*; do if [[ -f $f ]]; then tarball=$f; fi; done
  [[ -n $tarball ]] || die "no pgvector orig tarball in $BUILD_DIR/download"
  log "unpacking $(basename "$tarball")"
  rm -rf "$BUILD_DIR/pgvector"
  mkdir -p "$BUILD_DIR/pgvector"
  tar -xf "$tarball" -C "$BUILD_DIR/pgvector" --strip-components=1
  # OPTFLAGS= : no -march=native, the build must run on any x86-64 / arm64 CPU
  make -s -C "$BUILD_DIR/pgvector" -j"$(nproc)" PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS= >"$BUILD_DIR/pgvector-build.log" 2>&1 9>&- \
    || { tail_log "$BUILD_DIR/pgvector-build.log"; die "pgvector build failed"; }
  "${SUDO[@]}" make -s -C "$BUILD_DIR/pgvector" install PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS= >>"$BUILD_DIR/pgvector-build.log" 2>&1 9>&- \
    || { tail_log "$BUILD_DIR/pgvector-build.log"; die "pgvector make install failed"; }
  log "pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$BUILD_DIR/pgvector/vector.control") installed into $(pg_sharedir)/extension"
}

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
  for d in "$RUN_DIR" "$LOG_DIR" "$ARCHIVE_DIR" "$PGB_DIR" "$REDIS_DIR"; do
    mkdir -p "$d"
    chmod 755 "$d"
  done
  chmod 700 "$PGB_DIR" "$ARCHIVE_DIR"
  if [[ $EUID -eq 0 ]]; then
    for d in "$RUN_DIR" "$LOG_DIR" "$ARCHIVE_DIR" "$PGB_DIR" "$REDIS_DIR" "$PRIMARY_DATA" "$REPLICA_DATA"; do
      [[ -e $d ]] || continue
      if [[ -n $(find "$d" ! -user "$SVC_USER" -print -quit 2>/dev/null) ]]; then
        chown -R "$SVC_USER:" "$d"
      fi
    done
  fi
}

lock_stack() {
  if [[ ! -d $STACK_DIR ]]; then
    mkdir -p "$STACK_DIR"
    STACK_DIR=$(cd "$STACK_DIR" && pwd -P)
  fi
  exec 9>"$STACK_DIR/.lock"
  flock -w "$WAIT_TIMEOUT" 9 || die "another docker/stack.sh is running on $STACK_DIR (lock $STACK_DIR/.lock held for ${WAIT_TIMEOUT}s)"
}

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

wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = '4GB'
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = '1s'
fsync = on

shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
track_io_timing = on

logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = off
EOF
  if [[ $node == primary ]]; then
    cat <<EOF

archive_mode = on
archive_command = 'test ! -f $ARCHIVE_DIR/%f && cp %p $ARCHIVE_DIR/%f'
EOF
  else
    cat <<EOF

archive_mode = off
# fall back to the primary's WAL archive when streaming is not possible
restore_command = 'cp $ARCHIVE_DIR/%f %p'
archive_cleanup_command = '$PG_BIN/pg_archivecleanup $ARCHIVE_DIR %r'
EOF
  fi
}

pg_hba_content() {
  cat <<'EOF'
# Managed by docker/stack.sh
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
EOF
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
  # WAL of an older cluster would collide with the new one's segment names
  find "$ARCHIVE_DIR" -mindepth 1 -delete
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
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$REPL_USER') THEN
    CREATE ROLE $REPL_USER LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
  ELSE
    ALTER ROLE $REPL_USER LOGIN REPLICATION PASSWORD '$REPL_PASSWORD';
  END IF;
END
\$\$;
GRANT pg_monitor, pg_signal_backend TO $DB_USER;
\\connect template1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- failover: the service promotes a replica with pg_promote() (superuser-only by default);
-- the grant is per database and replicates with it
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER TEMPLATE template1'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \\gexec
\\connect $DB_NAME
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
\\connect postgres
GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer) TO $DB_USER;
EOF
}

pg_bootstrap() {
  local sysid
  # the suffix is the bootstrap SQL's version: a changed script runs again (it is idempotent)
  sysid="$(pg_sysid "$PRIMARY_DATA"):2"
  if [[ -f $STATE_DIR/primary.bootstrapped && $(cat "$STATE_DIR/primary.bootstrapped") == "$sysid" ]]; then
    return 0
  fi
  log "creating roles ($DB_USER, $REPL_USER), database $DB_NAME, extensions vector + pg_stat_statements"
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
  if port_listening "$port"; then
    die "port $port (for $node) is already used by another process $(port_owner "$port"); set STACK_PG_$( [[ $node == primary ]] && echo PRIMARY || echo REPLICA )_PORT"
  fi
  log "starting $node on $HOST:$port (log $logf)"
  if ! (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$data" -l "$logf" -w -t "$WAIT_TIMEOUT" -s start >/dev/null); then
    tail_log "$logf"
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
  if port_listening "$REDIS_PORT"; then
    die "port $REDIS_PORT (for redis) is already used by another process $(port_owner "$REDIS_PORT"); set STACK_REDIS_PORT"
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
  if port_listening "$PGB_PORT"; then
    die "port $PGB_PORT (for pgbouncer) is already used by another process $(port_owner "$PGB_PORT"); set STACK_PGBOUNCER_PORT"
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

# ----------------------------------------------------------------------------
# After a failover: rejoin a former primary as a standby of the new one
# ----------------------------------------------------------------------------
other_pg() { if [[ $1 == primary ]]; then echo replica; else echo primary; fi; }

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
  if ! (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_rewind" -D "$data" \
        --source-server="host=$RUN_DIR port=$src_port user=postgres dbname=postgres" \
        >"$LOG_DIR/rewind-$node.log" 2>&1); then
    tail_log "$LOG_DIR/rewind-$node.log"
    warn "pg_rewind failed: taking a fresh base backup of $other instead"
    rm -rf "$data"
    mkdir -m 700 "$data"
    [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$data"
    (cd "$STACK_DIR" && as_svc env PGPASSWORD="$REPL_PASSWORD" PGCONNECT_TIMEOUT=5 \
        timeout "$BASEBACKUP_TIMEOUT" "$PG_BIN/pg_basebackup" -D "$data" -X stream -c fast \
        -h "$HOST" -p "$src_port" -U "$REPL_USER" -w >"$LOG_DIR/basebackup-$node.log" 2>&1) \
      || { tail_log "$LOG_DIR/basebackup-$node.log"; die "pg_basebackup of $other failed"; }
  fi
  # follow the new primary: standby.signal + primary_conninfo (pg_rewind copied the source's auto.conf)
  as_svc sed -i -e '/^primary_conninfo/d' -e '/^primary_slot_name/d' "$data/postgresql.auto.conf"
  printf "primary_conninfo = 'host=%s port=%s user=%s password=%s application_name=stack_%s'\nprimary_slot_name = '%s'\n" \
    "$HOST" "$src_port" "$REPL_USER" "$REPL_PASSWORD" "$node" "$REPL_SLOT" | as_svc tee -a "$data/postgresql.auto.conf" >/dev/null
  as_svc touch "$data/standby.signal"
  rm -f "$data/postmaster.opts"
  pg_write_config "$node" || true
  pg_start "$node"
  if wait_until 30 node_streaming "$node"; then
    log "$node rejoined as a standby of $other (timeline $(pg_super "$node" postgres -c 'select timeline_id from pg_control_checkpoint()'))"
  else
    warn "$node runs but is not streaming from $other yet (see $(pg_log "$node"))"
  fi
}

node_streaming() {
  [[ $(pg_super "$1" postgres -c "select coalesce((select status from pg_stat_wal_receiver), 'none')" 2>/dev/null) == streaming ]]
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
  port_free "$port" || die "port $port is already in use"
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
  (cd "$STACK_DIR" && as_svc "$PG_BIN/pg_ctl" -D "$data" -l "$LOG_DIR/extra-$port.log" -w -t "$WAIT_TIMEOUT" -s start >/dev/null) \
    || { tail_log "$LOG_DIR/extra-$port.log"; die "extra replica on $port failed to start"; }
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
export PGBOUNCER_HOST=$HOST
export PGBOUNCER_PORT=$PGB_PORT
export PGBOUNCER_DB_RW=$PGB_DB_RW
export PGBOUNCER_DB_RO=$PGB_DB_RO
export PGBOUNCER_ADMIN_USER=$PGB_ADMIN_USER
export PGBOUNCER_ADMIN_PASSWORD=$PGB_ADMIN_PASSWORD
export REDIS_URL=redis://$HOST:$REDIS_PORT
export STACK_DIR=$STACK_DIR
export STACK_PG_BIN=$PG_BIN
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
[stack] primary     : $HOST:$PRIMARY_PORT   psql "postgresql://$DB_USER:$DB_PASSWORD@$HOST:$PRIMARY_PORT/$DB_NAME"
[stack] replica     : $HOST:$REPLICA_PORT   hot standby, streaming from the primary (slot $REPL_SLOT)
[stack] superuser   : psql -h $RUN_DIR -p $PRIMARY_PORT -U postgres   (unix socket, trust)
[stack] pgbouncer   : $HOST:$PGB_PORT   db $PGB_DB_RW -> primary, $PGB_DB_RO -> replica, * -> primary (transaction pooling)
[stack] pgb console : PGPASSWORD=$PGB_ADMIN_PASSWORD psql -h $HOST -p $PGB_PORT -U $PGB_ADMIN_USER pgbouncer
[stack] redis       : redis://$HOST:$REDIS_PORT
[stack] service env : eval "\$(bash docker/stack.sh env)"
EOF
  env_lines | sed 's/^/[stack]   /'
}

cmd_up() {
  local t0=$SECONDS
  lock_stack
  ensure_packages
  prepare_dirs
  ensure_pg primary
  ensure_pg replica
  wait_streaming
  redis_start
  pgb_start
  pgb_verify
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
  case $cmd in
    up) [[ $# -eq 1 ]] || usage; cmd_up ;;
    down) [[ $# -eq 1 ]] || usage; cmd_down ;;
    status) [[ $# -eq 1 ]] || usage; cmd_status ;;
    env) [[ $# -eq 1 ]] || usage; cmd_env ;;
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
