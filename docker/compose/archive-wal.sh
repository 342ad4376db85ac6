#!/usr/bin/env bash
# archive_command of both PostgreSQL nodes: archive_command = 'bash <this> %p %f'.
# Copies one WAL file into the archive volume under a temporary name and renames
# it, so a crash never leaves a truncated segment under its real name.
set -euo pipefail

src="$1"
dest="${WAL_ARCHIVE_DIR:-/var/lib/postgresql/wal-archive}/$2"

if [ -e "$dest" ]; then
  # PostgreSQL retries a file whose archiving it did not see finish: success
  # when the copy already there is identical, failure (and a log line) if not.
  cmp -s "$src" "$dest"
  exit
fi

tmp="$dest.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cp "$src" "$tmp"
sync "$tmp"
mv "$tmp" "$dest"
trap - EXIT
