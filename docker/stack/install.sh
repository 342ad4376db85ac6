# shellcheck shell=bash
# docker/stack/install.sh — packages from apt, pgvector from Debian 13's source package: sourced by docker/stack.sh (its settings and helpers are in scope).

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
  find_bin pgbackrest >/dev/null || pkgs+=(pgbackrest)
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

