# shellcheck shell=bash
# docker/stack/tls.sh — the stack's certificates and generated passwords: sourced by
# docker/stack.sh (its settings and helpers are in scope).
#
# TLS: a local CA (ca.crt/ca.key) and one server certificate (server.crt/server.key)
# for every node, its SANs 127.0.0.1, localhost and the compose service names, made
# with openssl at `up` and renewed when either expires within TLS_RENEW_DAYS. The CA's
# key stays with the user that runs the stack; the server key belongs to the nodes'
# OS user; both 0600.
#
# Secrets: every password of the stack is generated once per stack (32 random hex
# characters) into its own 0600 file under secrets/, and never printed by `up`:
# `docker/stack.sh env` is the one place that hands them to the service and the tests.

TLS_DIR=$STACK_DIR/tls
TLS_CA_CRT=$TLS_DIR/ca.crt
TLS_CA_KEY=$TLS_DIR/ca.key
TLS_SERVER_CRT=$TLS_DIR/server.crt
TLS_SERVER_KEY=$TLS_DIR/server.key
TLS_CA_DAYS=3650
TLS_SERVER_DAYS=397
TLS_RENEW_DAYS=30
# Names the nodes answer to: the local stack's, and the compose services' (the compose
# file makes its own with docker/compose/tls-init.sh, from the same list).
TLS_SERVER_SANS="IP:127.0.0.1,DNS:localhost,DNS:postgres-primary,DNS:postgres-replica,DNS:pgbouncer,DNS:redis"
SECRETS_DIR=$STACK_DIR/secrets

# tls_valid CERT: it exists and stays valid for TLS_RENEW_DAYS more days
tls_valid() {
  [[ -s $1 ]] && openssl x509 -in "$1" -noout -checkend $((TLS_RENEW_DAYS * 86400)) >/dev/null 2>&1
}

# tls_issued_by_ca: the server certificate verifies against the current CA
tls_issued_by_ca() {
  openssl verify -CAfile "$TLS_CA_CRT" "$TLS_SERVER_CRT" >/dev/null 2>&1
}

tls_sans_match() {
  local want got
  want=$(tr ',' '\n' <<<"$TLS_SERVER_SANS" | sed 's/^IP:/IP Address:/' | sort | tr '\n' ',')
  got=$(openssl x509 -in "$TLS_SERVER_CRT" -noout -ext subjectAltName 2>/dev/null \
    | tail -n +2 | tr -d ' ' | tr ',' '\n' | sed 's/^IPAddress:/IP Address:/' | sort | tr '\n' ',')
  [[ $want == "$got" ]]
}

# Makes the CA and the server certificate exist and be valid. 0 = something was (re)made.
tls_ensure() {
  local made=1
  mkdir -p "$TLS_DIR"
  chmod 755 "$TLS_DIR"
  if ! tls_valid "$TLS_CA_CRT" || [[ ! -s $TLS_CA_KEY ]]; then
    log "tls: generating the stack's CA ($TLS_CA_CRT, valid $TLS_CA_DAYS days)"
    rm -f "$TLS_SERVER_CRT"
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$TLS_CA_DAYS" \
      -subj "/CN=database-unit local stack CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$TLS_CA_KEY.tmp" -out "$TLS_CA_CRT.tmp" >/dev/null 2>&1) || die "tls: openssl could not make the CA"
    mv -f "$TLS_CA_KEY.tmp" "$TLS_CA_KEY"
    chmod 600 "$TLS_CA_KEY"
    chmod 644 "$TLS_CA_CRT.tmp"
    mv -f "$TLS_CA_CRT.tmp" "$TLS_CA_CRT"
    made=0
  fi
  if ! tls_valid "$TLS_SERVER_CRT" || [[ ! -s $TLS_SERVER_KEY ]] || ! tls_issued_by_ca || ! tls_sans_match; then
    log "tls: issuing the nodes' certificate ($TLS_SERVER_CRT: $TLS_SERVER_SANS, valid $TLS_SERVER_DAYS days)"
    local csr=$TLS_DIR/server.csr ext=$TLS_DIR/server.ext
    (umask 077 && openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
      -keyout "$TLS_SERVER_KEY.tmp" -out "$csr" >/dev/null 2>&1) || die "tls: openssl could not make the server key"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' \
      "$TLS_SERVER_SANS" >"$ext"
    openssl x509 -req -in "$csr" -CA "$TLS_CA_CRT" -CAkey "$TLS_CA_KEY" -CAcreateserial -sha256 \
      -days "$TLS_SERVER_DAYS" -extfile "$ext" -out "$TLS_SERVER_CRT.tmp" >/dev/null 2>&1 \
      || die "tls: openssl could not sign the server certificate"
    rm -f "$csr" "$ext" "$TLS_DIR/ca.srl"
    chmod 600 "$TLS_SERVER_KEY.tmp"
    chmod 644 "$TLS_SERVER_CRT.tmp"
    mv -f "$TLS_SERVER_KEY.tmp" "$TLS_SERVER_KEY"
    mv -f "$TLS_SERVER_CRT.tmp" "$TLS_SERVER_CRT"
    made=0
  fi
  # PostgreSQL, PgBouncer and Redis run as the nodes' OS user and read the key themselves
  # (PostgreSQL refuses a key that others can read).
  [[ $EUID -eq 0 ]] && chown "$SVC_USER:" "$TLS_SERVER_KEY" "$TLS_SERVER_CRT"
  if [[ $made -eq 0 ]]; then CHANGED=1; fi
  return $made
}

# A fingerprint of the server certificate, written into each node's configuration so that
# a renewed certificate counts as a changed configuration (and the node reloads it).
tls_fingerprint() {
  openssl x509 -in "$TLS_SERVER_CRT" -noout -fingerprint -sha256 2>/dev/null | sed 's/.*=//'
}

# secret NAME: the stack's password NAME, generated on first use (0600, never printed).
secret() {
  local f=$SECRETS_DIR/$1
  if [[ ! -s $f ]]; then
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    (umask 077 && openssl rand -hex 16 >"$f.tmp") || die "could not generate the secret $1"
    mv -f "$f.tmp" "$f"
  fi
  cat "$f"
}

# Fills the stack's password variables from secrets/ (generating what is missing).
load_secrets() {
  DB_PASSWORD=$(secret db-app)
  DB_MIGRATION_PASSWORD=$(secret db-owner)
  REPL_PASSWORD=$(secret replicator)
  PGB_ADMIN_PASSWORD=$(secret pgbouncer-admin)
  REDIS_PASSWORD=$(secret redis-service)
  REDIS_ADMIN_PASSWORD=$(secret redis-admin)
}
