# shellcheck shell=bash
# docker/stack/backup.sh — pgBackRest: WAL archiving, backups and restores of the stack's
# cluster. Sourced by docker/stack.sh (its settings and helpers are in scope).
#
# One stanza ($PGBR_STANZA) over both nodes (pg1 = primary, pg2 = replica: pgBackRest finds
# whichever is the primary, so archiving and backups carry on after a failover). The
# repository is encrypted (aes-256-cbc) with a passphrase generated once per stack, kept in
# 0600 files only, and compressed (zstd).

pgbr() { as_svc pgbackrest "--config=$PGBR_CONF" "--stanza=$PGBR_STANZA" "$@"; }

pgbr_passphrase() {
  local f=$PGBR_DIR/cipher-pass
  if [[ ! -s $f ]]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$f")
    if [[ $EUID -eq 0 ]]; then chown "$SVC_USER:" "$f"; fi
  fi
  cat "$f"
}

pgbr_conf_content() {
  cat <<CONF
# Managed by docker/stack.sh: rewritten on every 'up'. Holds the repository passphrase: 0600.
[global]
repo1-path=$PGBR_REPO
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(pgbr_passphrase)
# Weekly full backups are kept 12 weeks, daily differential ones 30 (the spec); WAL is
# kept for every retained backup, which covers the 7-day point-in-time window.
repo1-retention-full-type=time
repo1-retention-full=84
repo1-retention-diff=30
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-path=$LOG_DIR/pgbackrest
lock-path=$RUN_DIR/pgbackrest
spool-path=$PGBR_DIR/spool
log-level-console=warn
log-level-stderr=error
log-level-file=info

[$PGBR_STANZA]
pg1-path=$PRIMARY_DATA
pg1-port=$PRIMARY_PORT
pg1-socket-path=$RUN_DIR
pg1-user=postgres
pg2-path=$REPLICA_DATA
pg2-port=$REPLICA_PORT
pg2-socket-path=$RUN_DIR
pg2-user=postgres
CONF
}

# Directories and the configuration, before PostgreSQL starts (its archive_command needs them).
pgbr_prepare() {
  local d
  for d in "$PGBR_DIR" "$PGBR_REPO" "$LOG_DIR/pgbackrest" "$RUN_DIR/pgbackrest"; do
    mkdir -p "$d"
  done
  chmod 700 "$PGBR_DIR" "$PGBR_REPO"
  if [[ $EUID -eq 0 ]]; then
    chown -R "$SVC_USER:" "$PGBR_DIR" "$PGBR_REPO" "$LOG_DIR/pgbackrest" "$RUN_DIR/pgbackrest"
  fi
  if pgbr_conf_content | install_file "$PGBR_CONF" 600; then
    log "pgbackrest: configuration written ($PGBR_CONF)"
    CHANGED=1
  fi
  if [[ $EUID -eq 0 ]]; then chown "$SVC_USER:" "$PGBR_CONF"; fi
  return 0
}

# A fresh cluster (initdb) has a new system id: the old repository cannot take its WAL.
pgbr_wipe_repo() {
  find "$PGBR_REPO" -mindepth 1 -delete 2>/dev/null || true
  rm -f "$STATE_DIR/pgbackrest.stanza"
}

# The stanza exists and archiving works (once per cluster; `check` forces a WAL switch).
pgbr_ensure_stanza() {
  local sysid
  sysid=$(pg_sysid "$PRIMARY_DATA")
  if [[ -f $STATE_DIR/pgbackrest.stanza && $(cat "$STATE_DIR/pgbackrest.stanza") == "$sysid" ]]; then
    return 0
  fi
  log "pgbackrest: creating stanza $PGBR_STANZA (repository $PGBR_REPO, encrypted, zstd)"
  pgbr stanza-create >"$LOG_DIR/pgbackrest-stanza.log" 2>&1 \
    || { tail_log "$LOG_DIR/pgbackrest-stanza.log"; die "pgbackrest stanza-create failed"; }
  pgbr check >>"$LOG_DIR/pgbackrest-stanza.log" 2>&1 \
    || { tail_log "$LOG_DIR/pgbackrest-stanza.log"; die "pgbackrest check failed: WAL archiving does not work"; }
  echo "$sysid" >"$STATE_DIR/pgbackrest.stanza"
  CHANGED=1
}

# `stack.sh backup [full|diff|incr]`: a backup now (the service's scheduler does the same).
cmd_backup() {
  local type=${1:-full}
  [[ $type =~ ^(full|diff|incr)$ ]] || usage
  pg_ready primary || die "the primary is not running"
  log "pgbackrest: $type backup of stanza $PGBR_STANZA"
  pgbr "--type=$type" backup || die "pgbackrest backup failed (log: $LOG_DIR/pgbackrest)"
  pgbr info
}

# ----------------------------------------------------------------------------
# Disaster recovery: the bash half of `npm run dr:restore` (docs/dr_runbook.md)
# ----------------------------------------------------------------------------
MOVED_DIR=$STACK_DIR/moved-aside
RESTORE_TIMEOUT=${STACK_RESTORE_TIMEOUT:-3600}

# The repository holds at least one backup set (a full one: every other type needs one).
pgbr_has_backups() {
  compgen -G "$PGBR_REPO/backup/$PGBR_STANZA/[0-9]*-[0-9]*F*" >/dev/null
}

# `stack.sh dr-prepare`: stop what is left of the PostgreSQL nodes and move every data
# folder that remains aside (never deleted: it may be all that is left of a newer state).
cmd_dr_prepare() {
  lock_stack
  resolve_pg_bin
  prepare_dirs
  local extra port
  for extra in "$STACK_DIR"/extra-*; do
    [[ -d $extra ]] || continue
    port=${extra##*/extra-}
    [[ $port =~ ^[0-9]+$ ]] && extra_kill "$port"
  done
  pg_stop replica
  pg_stop primary
  for port in "$PRIMARY_PORT" "$REPLICA_PORT"; do
    if port_listening "$port"; then
      die "port $port is still in use after stopping the nodes ($(port_owner "$port")): stop that process first"
    fi
  done
  local d stamp moved=0
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  for d in "$PRIMARY_DATA" "$REPLICA_DATA" "$STACK_DIR"/extra-*; do
    [[ -e $d ]] || continue
    if [[ -d $d && -z $(ls -A "$d" 2>/dev/null) ]]; then
      rmdir "$d"
      continue
    fi
    mkdir -p "$MOVED_DIR"
    chmod 700 "$MOVED_DIR"
    mv "$d" "$MOVED_DIR/${d##*/}-$stamp"
    log "moved aside: $d -> $MOVED_DIR/${d##*/}-$stamp (remove it once the restore is accepted)"
    moved=1
  done
  rm -f "$STATE_DIR/replica.cloned"
  [[ $moved -eq 1 ]] || log "no data folder left to move aside"
  log "ready for the restore: no PostgreSQL node of the stack runs, ports $PRIMARY_PORT $REPLICA_PORT free"
}

pg_promoted() { pg_ready primary && [[ $(pg_role primary) == primary ]]; }

# `stack.sh dr-restore LABEL default|immediate|time|lsn [TARGET]`: pgBackRest restores backup
# set LABEL into the (empty) primary folder, replays the archived WAL up to the target (to
# the end of the archive with `default`), promotes, and the primary accepts writes again
# on a new timeline. The replica is rebuilt afterwards (`rebuild replica`).
cmd_dr_restore() {
  local label=$1 type=$2 target=${3:-}
  [[ $label =~ ^[0-9]{8}-[0-9]{6}F(_[0-9]{8}-[0-9]{6}[DI])?$ ]] || die "not a pgBackRest backup label: '$label'"
  case $type in
    default | immediate) [[ -z $target ]] || die "--type=$type takes no target" ;;
    time | lsn) [[ -n $target ]] || die "--type=$type needs a target" ;;
    *) die "restore type must be default, immediate, time or lsn (got '$type')" ;;
  esac
  [[ $RESTORE_TIMEOUT =~ ^[0-9]+$ ]] || die "STACK_RESTORE_TIMEOUT is not a number: '$RESTORE_TIMEOUT'"
  lock_stack
  ensure_packages
  prepare_dirs
  pgbr_prepare
  pg_pid primary >/dev/null && die "the primary is running: run 'stack.sh dr-prepare' first"
  if [[ -e $PRIMARY_DATA && -n $(ls -A "$PRIMARY_DATA" 2>/dev/null) ]]; then
    die "$PRIMARY_DATA is not empty: run 'stack.sh dr-prepare' first (it moves it aside)"
  fi
  port_taken "$PRIMARY_PORT" && die_port primary "$PRIMARY_PORT" STACK_PG_PRIMARY_PORT
  mkdir -p -m 700 "$PRIMARY_DATA"
  if [[ $EUID -eq 0 ]]; then chown "$SVC_USER:" "$PRIMARY_DATA"; fi
  local args=("--set=$label")
  if [[ $type != default ]]; then
    args+=("--type=$type" "--target-action=promote")
    [[ -z $target ]] || args+=("--target=$target")
  fi
  log "pgbackrest restore ${args[*]} into $PRIMARY_DATA"
  if ! (cd "$STACK_DIR" && pgbr "${args[@]}" restore >"$LOG_DIR/pgbackrest-restore.log" 2>&1); then
    tail_log "$LOG_DIR/pgbackrest-restore.log"
    die "pgbackrest restore failed (log: $LOG_DIR/pgbackrest-restore.log)"
  fi
  rm -f "$PRIMARY_DATA/postmaster.opts" "$PRIMARY_DATA/standby.signal"
  pg_write_config primary || true
  local logf
  logf=$(pg_log primary)
  [[ -f $logf ]] && echo "--- dr-restore $(date -u +%FT%TZ) ---" >>"$logf"
  # replaying the archive can take long: pg_ctl waits until the server accepts connections
  WAIT_TIMEOUT=$RESTORE_TIMEOUT pg_start primary
  log "waiting for the end of recovery (promotion at the target)"
  if ! wait_until "$RESTORE_TIMEOUT" pg_promoted; then
    tail_log "$logf"
    pg_pid primary >/dev/null || die "the restored primary stopped during recovery (target not reached in the archived WAL?): see $logf"
    die "the restored primary is still in recovery after ${RESTORE_TIMEOUT}s (STACK_RESTORE_TIMEOUT)"
  fi
  # pgBackRest's recovery settings live in postgresql.auto.conf, which pg_basebackup copies:
  # a replica cloned with a recovery target would stop (and promote) at it.
  local s resets=()
  for s in restore_command recovery_target recovery_target_time recovery_target_lsn recovery_target_xid \
           recovery_target_name recovery_target_inclusive recovery_target_action recovery_target_timeline; do
    resets+=(-c "ALTER SYSTEM RESET $s")
  done
  pg_super primary postgres "${resets[@]}" -c 'SELECT pg_reload_conf()' >/dev/null \
    || die "could not reset the recovery settings of the restored primary"
  grep -E 'recovery stopping|last completed transaction|selected new timeline|redo done|consistent recovery state' "$logf" 2>/dev/null \
    | tail -n 6 | sed 's/^/[stack]   /' || true
  log "primary restored and promoted (timeline $(pg_super primary postgres -c 'select timeline_id from pg_control_checkpoint()'))"
}
