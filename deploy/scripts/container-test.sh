#!/usr/bin/env bash
# `make container-test`: build the image and run tests/container against it (and, with
# COMPOSE=1, `make compose-test` too). Where no Docker engine answers, and this is root on a
# Debian-like machine, installs docker.io and debootstrap and starts dockerd for the run
# (stopping it afterwards). Anywhere Docker cannot run it says why and exits 0.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
skip() { echo "container-test: SKIPPED: $*"; exit 0; }

started_dockerd=""
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    echo "container-test: stopping the dockerd it started (pid $started_dockerd)"
    kill "$started_dockerd" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
  fi
}
trap stop_dockerd EXIT

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }

if ! engine_answers; then
  [ "$(id -u)" = 0 ] || skip "no Docker engine answers and this is not root (cannot start dockerd)"
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || skip "no Docker engine, and no apt-get to install docker.io"
    echo "container-test: installing docker.io and debootstrap"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null) \
      || skip "could not install docker.io/debootstrap"
  fi
  log=$(mktemp /tmp/iioe-dockerd.XXXXXX.log)
  echo "container-test: starting dockerd (log: $log)"
  dockerd >"$log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 1 60); do engine_answers && break; kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
  engine_answers || { tail -n 5 "$log"; skip "dockerd does not start here (no privileges for containers?)"; }
fi
if ! command -v debootstrap >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null) || true
fi

started=$(date +%s)
IMAGE=${IMAGE:-iioe-platform:local} deploy/scripts/build-image.sh >/tmp/iioe-image-build.log 2>&1 \
  || { tail -n 40 /tmp/iioe-image-build.log; echo "container-test: image build failed"; exit 1; }
tail -n 1 /tmp/iioe-image-build.log

basetemp=$(mktemp -d /tmp/iioe-container-test.XXXXXX)
IIOE_CONTAINER_TESTS=1 TESTCONTAINERS_RYUK_DISABLED=true IIOE_IMAGE=${IMAGE:-iioe-platform:local} \
  "$BIN/python" -m pytest tests/container -p no:cacheprovider --basetemp="$basetemp" -rA -s
status=$?
rm -rf "$basetemp"
if [ "$status" = 0 ] && [ "${COMPOSE:-0}" = 1 ]; then
  deploy/scripts/compose-test.sh
  status=$?
fi
echo "container-test: finished in $(( $(date +%s) - started )) s (exit $status)"
exit "$status"
