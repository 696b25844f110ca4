#!/usr/bin/env bash
# Build the platform image from deploy/Dockerfile (run from anywhere; `make image` calls it).
#
#   IMAGE=iioe-platform:local          the tag to build
#   PYTHON_IMAGE=python:3.11-slim      the base; default: the upstream image when it is present
#                                      or can be pulled, else a Debian base made with debootstrap
#                                      (deploy/scripts/make-base-image.sh, cached)
#   PIP_INDEX_URL / PIP_CERT           default to this machine's pip configuration
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/scripts/docker-env.sh

image=${IMAGE:-iioe-platform:local}
upstream=python:3.11-slim
base=${PYTHON_IMAGE:-}
if [ -z "$base" ]; then
  if "$DOCKER" image inspect "$upstream" >/dev/null 2>&1 || timeout 60 "$DOCKER" pull -q "$upstream" >/dev/null 2>&1; then
    base=$upstream
  else
    echo "cannot pull $upstream: building on a local Debian base instead"
    base=iioe-python-base:bookworm
    deploy/scripts/make-base-image.sh --tag "$base"
  fi
fi

args=(--network host -f deploy/Dockerfile --build-arg "PYTHON_IMAGE=$base" -t "$image")
# Only network indexes: a file:// index of the host is not inside the build.
web_only() { tr ' ' '\n' | grep -E '^https?://' | paste -sd' ' - || true; }
index=$(pip_setting PIP_INDEX_URL index-url | web_only)
extra=$(pip_setting PIP_EXTRA_INDEX_URL extra-index-url | web_only)
cert=$(pip_setting PIP_CERT cert)
[ -n "$index" ] && args+=(--build-arg "PIP_INDEX_URL=$index")
[ -n "$extra" ] && args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
[ -n "$cert" ] && [ -s "$cert" ] && args+=(--secret "id=pip_cert,src=$cert")

started=$(date +%s)
previous=$("$DOCKER" image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
echo "building $image on $base"
"$DOCKER" build "${args[@]}" ${BUILD_FLAGS:-} .
# The image the tag used to name is dangling now: drop it (ignored while a container uses it).
if [ -n "$previous" ] && [ "$previous" != "$("$DOCKER" image inspect -f '{{.Id}}' "$image")" ]; then
  "$DOCKER" rmi "$previous" >/dev/null 2>&1 || true
fi
size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
echo "built $image in $(( $(date +%s) - started )) s: $(awk -v s="$size" 'BEGIN{printf "%.0f MB", s/1e6}')"
