#!/bin/sh
# Starts Redis of the compose stack with TLS only and ACL users, after writing the ACL
# file into a tmpfs (passwords as SHA-256 digests, never on a command line):
#   default      off
#   dbu          the service: every data, scripting, stream and pub/sub command on every
#                key and channel, INFO, nothing else of @dangerous (REDIS_SERVICE_PASSWORD)
#   dbu_admin    operators and the healthcheck (REDIS_ADMIN_PASSWORD)
set -eu

RUN_DIR="${REDIS_RUN_DIR:-/run/redis}"
service_password="${REDIS_SERVICE_PASSWORD:?REDIS_SERVICE_PASSWORD is required}"
admin_password="${REDIS_ADMIN_PASSWORD:?REDIS_ADMIN_PASSWORD is required}"

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

umask 077
mkdir -p "$RUN_DIR"
{
  echo "user default off resetchannels -@all"
  echo "user dbu on #$(sha "$service_password") resetchannels ~* &* +@all -@dangerous +info"
  echo "user dbu_admin on #$(sha "$admin_password") ~* &* +@all"
} >"$RUN_DIR/users.acl"
if [ "$(id -u)" = 0 ]; then
  chown redis:redis "$RUN_DIR" "$RUN_DIR/users.acl"
fi

exec docker-entrypoint.sh redis-server \
  --aclfile "$RUN_DIR/users.acl" \
  --port 0 --tls-port 6379 \
  --tls-cert-file /tls/redis/server.crt --tls-key-file /tls/redis/server.key \
  --tls-ca-cert-file /tls/ca.crt --tls-auth-clients no --tls-protocols "TLSv1.2 TLSv1.3" \
  --maxmemory 1gb --maxmemory-policy allkeys-lru --save "900 1" --appendonly no
