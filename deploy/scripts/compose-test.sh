#!/usr/bin/env bash
# `make compose-test`: docker-compose.yml for real — the 3-node NATS JetStream cluster,
# PostgreSQL, provision and the four services — on the host's loopback with free ports
# (deploy/compose/host-network.yml), local stand-in images where the official ones cannot be
# pulled; waits for every /readyz, runs tests/container/compose_smoke.py, tears down.
# Authentication and TLS as shipped: fresh secrets (deploy/scripts/make-secrets.sh) in a
# temporary directory; the smoke also proves that NATS refuses anonymous clients.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
. deploy/scripts/docker-env.sh
skip() { echo "compose-test: SKIPPED: $*"; exit 0; }
# Debian's docker-compose implements the compose file format; install it where we can (root, apt-get)
if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "compose-test: installing docker-compose"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) || true
fi
command -v docker-compose >/dev/null 2>&1 || skip "docker-compose is not installed (apt-get install docker-compose)"
timeout 20 docker info >/dev/null 2>&1 || skip "no Docker engine answers"

started=$(date +%s)
export IIOE_IMAGE=${IMAGE:-iioe-platform:local}
# Always (re)build: an image left from older code would test that code (layers are cached, < 10 s).
# COMPOSE_TEST_NO_BUILD=1 uses $IMAGE as it is.
if [ "${COMPOSE_TEST_NO_BUILD:-0}" = 1 ] && "$DOCKER" image inspect "$IIOE_IMAGE" >/dev/null 2>&1; then
  :
else
  IMAGE=$IIOE_IMAGE deploy/scripts/build-image.sh >/tmp/iioe-compose-build.$$.log 2>&1 \
    || { tail -n 30 /tmp/iioe-compose-build.$$.log; echo "compose-test: image build failed"; exit 1; }
  rm -f /tmp/iioe-compose-build.$$.log
fi
have_or_pull() { "$DOCKER" image inspect "$1" >/dev/null 2>&1 || timeout 60 "$DOCKER" pull -q "$1" >/dev/null 2>&1; }
if [ -z "${NATS_IMAGE:-}" ] || [ -z "${POSTGRES_IMAGE:-}" ]; then
  if have_or_pull nats:2.12-alpine && have_or_pull postgres:17; then
    export NATS_IMAGE=${NATS_IMAGE:-nats:2.12-alpine} POSTGRES_IMAGE=${POSTGRES_IMAGE:-postgres:17}
  else
    echo "compose-test: official nats/postgres images cannot be pulled: using local stand-ins"
    export NATS_IMAGE=iioe-nats:local POSTGRES_IMAGE=iioe-postgres:local
    deploy/scripts/build-infra-images.sh || exit 1
  fi
fi

# Free loopback ports for everything (other work on this machine may hold the defaults).
read -r -a ports <<<"$("$BIN/python" -c '
import socket
socks = [socket.socket() for _ in range(14)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()')"
export HOSTNET_NATS_1_PORT=${ports[0]} HOSTNET_NATS_2_PORT=${ports[1]} HOSTNET_NATS_3_PORT=${ports[2]}
export HOSTNET_NATS_1_CLUSTER_PORT=${ports[3]} HOSTNET_NATS_2_CLUSTER_PORT=${ports[4]} HOSTNET_NATS_3_CLUSTER_PORT=${ports[5]}
export HOSTNET_NATS_1_MONITOR_PORT=${ports[6]} HOSTNET_NATS_2_MONITOR_PORT=${ports[7]} HOSTNET_NATS_3_MONITOR_PORT=${ports[8]}
export HOSTNET_POSTGRES_PORT=${ports[9]} HOSTNET_REGISTRATION_PORT=${ports[10]} HOSTNET_CERTIFICATION_PORT=${ports[11]}
export HOSTNET_ANALYTICS_PORT=${ports[12]} HOSTNET_NOTIFICATIONS_PORT=${ports[13]}
IIOE_SECRETS_DIR=$(mktemp -d /tmp/iioe-compose-secrets.XXXXXX)
export IIOE_SECRETS_DIR
trap 'rm -rf "$IIOE_SECRETS_DIR"' EXIT
deploy/scripts/make-secrets.sh "$IIOE_SECRETS_DIR" >/dev/null || { echo "compose-test: make-secrets.sh failed"; exit 1; }
secret() { sed -n "s/^$1=//p" "$IIOE_SECRETS_DIR/compose.env"; }

project=iioe-compose-test-$$
# docker-compose 1.x refuses published ports with network_mode: host and merges (never
# replaces) `ports` across files, so the merged configuration is resolved once and its
# published ports, meaningless on the host network, are dropped.
resolved=$(mktemp /tmp/iioe-compose.XXXXXX.yml)
docker-compose --env-file "$IIOE_SECRETS_DIR/compose.env" -f docker-compose.yml -f deploy/compose/host-network.yml config \
  | "$BIN/python" -c '
import sys, yaml
config = yaml.safe_load(sys.stdin)
for service in config["services"].values():
    service.pop("ports", None)
yaml.safe_dump(config, sys.stdout, sort_keys=False)' >"$resolved" || { echo "compose-test: invalid compose files"; exit 1; }
compose=(docker-compose -p "$project" -f "$resolved" --project-directory "$PWD")
teardown() {
  [ "${status:-1}" = 0 ] || "${compose[@]}" logs --no-color --tail=30 2>&1 | tail -n 150
  "${compose[@]}" down -v --remove-orphans -t 20 >/dev/null 2>&1
  rm -rf "$resolved" "$IIOE_SECRETS_DIR"
}
trap teardown EXIT

echo "compose-test: up (project $project; NATS ${HOSTNET_NATS_1_PORT}/${HOSTNET_NATS_2_PORT}/${HOSTNET_NATS_3_PORT}, images $IIOE_IMAGE, $NATS_IMAGE, $POSTGRES_IMAGE)"
up_started=$(date +%s)
status=1
"${compose[@]}" up -d --no-build >/tmp/iioe-compose-up.$$.log 2>&1 || { cat /tmp/iioe-compose-up.$$.log; exit 1; }
rm -f /tmp/iioe-compose-up.$$.log

"$BIN/python" - <<'PY' || exit 1
import os, sys, time, urllib.request
pending = {n: f"http://127.0.0.1:{os.environ[f'HOSTNET_{n.upper()}_PORT']}/readyz"
           for n in ("registration", "certification", "analytics", "notifications")}
deadline = time.monotonic() + 180
while pending and time.monotonic() < deadline:
    for name, url in list(pending.items()):
        try:
            if urllib.request.urlopen(url, timeout=3).status == 200:
                del pending[name]
        except OSError:
            pass
    time.sleep(1)
if pending:
    sys.exit(f"compose-test: never ready (/readyz): {', '.join(pending)}")
PY
echo "compose-test: every service ready $(( $(date +%s) - up_started )) s after \`up\`"
"${compose[@]}" ps

"$BIN/python" tests/container/compose_smoke.py \
  --nats-url "nats://127.0.0.1:${HOSTNET_NATS_1_PORT},nats://127.0.0.1:${HOSTNET_NATS_2_PORT},nats://127.0.0.1:${HOSTNET_NATS_3_PORT}" \
  --registration-url "http://127.0.0.1:${HOSTNET_REGISTRATION_PORT}" \
  --certification-url "http://127.0.0.1:${HOSTNET_CERTIFICATION_PORT}" \
  --analytics-url "http://127.0.0.1:${HOSTNET_ANALYTICS_PORT}" \
  --token "$(secret IIOE_OPERATOR_TOKEN)" \
  --nats-tls-ca "$IIOE_SECRETS_DIR/tls/ca.crt" --nats-user partner-must \
  --nats-password "$(secret IIOE_NATS_PASSWORD_PARTNER_MUST)"
status=$?
# The three nodes must have formed one cluster (each pair is connected by route connections).
routes=$("$BIN/python" -c 'import json, sys, urllib.request as r; z = json.load(r.urlopen(sys.argv[1], timeout=5)); print(len({x.get("remote_name") or x.get("remote_id") for x in z["routes"]}))' \
  "http://127.0.0.1:${HOSTNET_NATS_1_MONITOR_PORT}/routez" 2>/dev/null || echo 0)
echo "compose-test: nats-1 is routed to $routes other cluster nodes"
[ "$routes" -ge 2 ] || status=1
echo "compose-test: $([ "$status" = 0 ] && echo PASSED || echo FAILED) in $(( $(date +%s) - started )) s (tearing down)"
exit "$status"
