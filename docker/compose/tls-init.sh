#!/usr/bin/env bash
# One-shot service of the compose stack (runs before every other one): the stack's CA and
# the nodes' server certificate in the `tls` volume, made with openssl on first start and
# renewed when either expires within TLS_RENEW_DAYS (as docker/stack/tls.sh does for the
# local stack). The server key is copied once per consumer with that image's user as its
# owner and mode 0600 (PostgreSQL refuses a key others can read):
#   /tls/ca.crt                         every client (the service, replication, PgBouncer)
#   /tls/postgres/server.{crt,key}      both PostgreSQL nodes   (uid POSTGRES_UID, 999)
#   /tls/redis/server.{crt,key}         Redis                   (uid REDIS_UID, 999)
#   /tls/pgbouncer/server.{crt,key}     PgBouncer               (uid PGBOUNCER_UID, 70)
# The CA's key never leaves /tls/ca.key (root, 0600).
set -Eeuo pipefail

DIR="${TLS_DIR:-/tls}"
SANS="DNS:postgres-primary,DNS:postgres-replica,DNS:pgbouncer,DNS:redis,DNS:localhost,IP:127.0.0.1"
CA_DAYS="${TLS_CA_DAYS:-3650}"
SERVER_DAYS="${TLS_SERVER_DAYS:-397}"
RENEW_DAYS="${TLS_RENEW_DAYS:-30}"

log() { printf 'tls-init: %s\n' "$*" >&2; }
valid() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend $((RENEW_DAYS * 86400)) >/dev/null 2>&1; }

umask 077
mkdir -p "$DIR"
chmod 0755 "$DIR"
cd "$DIR"

if ! valid ca.crt || [ ! -s ca.key ]; then
  log "generating the stack's CA (valid ${CA_DAYS} days)"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$CA_DAYS" \
    -subj "/CN=database-unit compose CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key.tmp -out ca.crt.tmp 2>/dev/null
  mv -f ca.key.tmp ca.key
  chmod 0644 ca.crt.tmp
  mv -f ca.crt.tmp ca.crt
  rm -f server.crt
fi

if ! valid server.crt || [ ! -s server.key ] || ! openssl verify -CAfile ca.crt server.crt >/dev/null 2>&1; then
  log "issuing the nodes' certificate (${SANS}, valid ${SERVER_DAYS} days)"
  openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=postgres-primary" \
    -keyout server.key.tmp -out server.csr 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' \
    "$SANS" >server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$SERVER_DAYS" -extfile server.ext -out server.crt.tmp 2>/dev/null
  rm -f server.csr server.ext ca.srl
  mv -f server.key.tmp server.key
  chmod 0644 server.crt.tmp
  mv -f server.crt.tmp server.crt
fi

for consumer in "postgres:${POSTGRES_UID:-999}" "redis:${REDIS_UID:-999}" "pgbouncer:${PGBOUNCER_UID:-70}"; do
  name="${consumer%%:*}"
  uid="${consumer##*:}"
  install -d -m 0755 "$name"
  install -m 0600 -o "$uid" -g "$uid" server.key "$name/server.key"
  install -m 0644 server.crt "$name/server.crt"
done
log "certificates ready in ${DIR} (CA ${DIR}/ca.crt)"
