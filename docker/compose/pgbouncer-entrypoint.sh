#!/bin/sh
# Starts PgBouncer with the committed pgbouncer.ini, after writing what must not
# be committed into a tmpfs: the auth_file (plain-text secrets, as SCRAM
# pass-through to PostgreSQL needs) and the admin/stats user names it includes.
# POSIX sh: the image is Alpine.
set -eu

RUN_DIR="${PGBOUNCER_RUN_DIR:-/run/pgbouncer}"
CONFIG="${PGBOUNCER_CONFIG:-/etc/pgbouncer/pgbouncer.ini}"

app_user="${APP_DB_USER:-app}"
app_password="${APP_DB_PASSWORD:?APP_DB_PASSWORD is required}"
admin_user="${PGBOUNCER_ADMIN_USER:-pgbouncer_admin}"
admin_password="${PGBOUNCER_ADMIN_PASSWORD:?PGBOUNCER_ADMIN_PASSWORD is required}"

# User names go into an ini line unquoted: keep them to plain identifiers.
for name in "$app_user" "$admin_user"; do
  case "$name" in
    '' | *[!A-Za-z0-9_]*)
      echo "pgbouncer-entrypoint: invalid user name '$name'" >&2
      exit 1
      ;;
  esac
done

# auth_file format: "user" "secret", with a double quote doubled.
quote() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"
}

umask 077
mkdir -p "$RUN_DIR"
{
  printf '%s %s\n' "$(quote "$app_user")" "$(quote "$app_password")"
  printf '%s %s\n' "$(quote "$admin_user")" "$(quote "$admin_password")"
} > "$RUN_DIR/userlist.txt.tmp"
mv "$RUN_DIR/userlist.txt.tmp" "$RUN_DIR/userlist.txt"

printf 'admin_users = %s\nstats_users = %s\n' "$admin_user" "$app_user" \
  > "$RUN_DIR/users.ini.tmp"
mv "$RUN_DIR/users.ini.tmp" "$RUN_DIR/users.ini"

exec pgbouncer "$CONFIG"
