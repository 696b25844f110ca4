#!/usr/bin/env bash
# Secrets of a docker-compose deployment, generated on the compose host and never committed:
#
#   deploy/scripts/make-secrets.sh [DIR]        # DIR: $IIOE_SECRETS_DIR, else deploy/.secrets
#
#   DIR/compose.env   every secret, for `docker compose --env-file DIR/compose.env` (interpolation):
#                     POSTGRES_PASSWORD, IIOE_OPERATOR_TOKEN, IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY, IIOE_NATS_PASSWORD_<USER> (one per
#                     user of deploy/nats/accounts.conf), IIOE_DB_PASSWORD_<SERVICE>
#   DIR/nats.env      the IIOE_NATS_PASSWORD_* lines only: the nats-server's environment
#   DIR/tls/          ca.crt, tls.crt, tls.key: the NATS servers' certificate (SANs nats-1,
#                     nats-2, nats-3, nats, localhost, 127.0.0.1) from a local CA, laid out
#                     like a cert-manager Secret; DIR/ca.key (the CA's key) stays outside it
#
# Idempotent: existing values and certificates are kept, missing ones are added (a partner
# added to accounts.conf gets its password on the next run). Rotation: delete a line (or
# tls/) and re-run, then `docker compose up -d` (deploy/README.md, "Credentials and TLS").
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-${IIOE_SECRETS_DIR:-deploy/.secrets}}
umask 077
mkdir -p "$dir/tls"
env_file=$dir/compose.env
touch "$env_file"

random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }   # hex: URL-safe, no quoting
have() { grep -q "^$1=" "$env_file"; }

names=(POSTGRES_PASSWORD IIOE_OPERATOR_TOKEN)
names+=($(grep -oE '\$IIOE_NATS_PASSWORD_[A-Z0-9_]+' deploy/nats/accounts.conf | tr -d '$' | sort -u))
for service in REGISTRATION CERTIFICATION ANALYTICS NOTIFICATIONS; do names+=("IIOE_DB_PASSWORD_$service"); done
added=0
for name in "${names[@]}"; do
  have "$name" || { echo "$name=$(random)" >>"$env_file"; added=$((added + 1)); }
done
# certification's key-encryption key: base64 of 32 random bytes (AES-256-GCM); never rotated by a re-run
have IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY || {
  echo "IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '\n')" >>"$env_file"
  added=$((added + 1))
}
grep '^IIOE_NATS_PASSWORD_' "$env_file" >"$dir/nats.env"

tls=$dir/tls
if [ ! -s "$tls/ca.crt" ] || [ ! -s "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=IIOE local NATS CA" -keyout "$dir/ca.key" -out "$tls/ca.crt" 2>/dev/null
  rm -f "$tls/tls.crt"
fi
if [ ! -s "$tls/tls.crt" ] || [ ! -s "$tls/tls.key" ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=nats" \
    -keyout "$tls/tls.key" -out "$tls/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:nats,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$tls/ext.cnf"
  openssl x509 -req -in "$tls/tls.csr" -CA "$tls/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 397 -extfile "$tls/ext.cnf" -out "$tls/tls.crt" 2>/dev/null
  rm -f "$tls/tls.csr" "$tls/ext.cnf" "$tls/ca.srl"
fi
# The certificates are public; the NATS container reads its key as root, the services (uid
# 10001) only the CA certificate.
chmod 644 "$tls/ca.crt" "$tls/tls.crt"
chmod 755 "$tls"
echo "make-secrets: $dir ($added new values; ${#names[@]} secrets; TLS in $tls)"
