#!/usr/bin/env bash
# Make a Debian base image locally with debootstrap, for machines where the upstream images
# (python:3.11-slim, nats, postgres) cannot be pulled. Cached: nothing is done when the tag
# already exists (pass --force to rebuild).
#
#   deploy/scripts/make-base-image.sh                      # iioe-python-base:bookworm
#   deploy/scripts/make-base-image.sh --suite trixie --tag iioe-debian-base:trixie --packages ""
#
# The default image has what deploy/Dockerfile expects of PYTHON_IMAGE: python3 (3.11 on
# bookworm), python3-venv, and `python` linked to python3 (python-is-python3).
# Needs root, debootstrap and a running Docker engine. DEBIAN_MIRROR overrides the mirror
# (default: the first one in this machine's apt sources, else deb.debian.org).
set -euo pipefail

suite=bookworm
tag=""
packages="python3,python3-venv,python-is-python3"
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) suite=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --packages) packages=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
tag=${tag:-iioe-python-base:$suite}
docker=${DOCKER:-docker}

if [ "$force" = 0 ] && "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists (cached; --force rebuilds it)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | awk '{print $2}' | head -n1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

dir=$(mktemp -d /tmp/iioe-rootfs.XXXXXX)
trap 'rm -rf "$dir"' EXIT
started=$(date +%s)
echo "debootstrap --variant=minbase $suite ($mirror) + [${packages}] -> $tag"
debootstrap --variant=minbase ${packages:+--include="$packages"} "$suite" "$dir" "$mirror" >"$dir.log" 2>&1 \
  || { tail -n 30 "$dir.log" >&2; rm -f "$dir.log"; exit 1; }
rm -f "$dir.log"
# Smaller image: no apt lists, caches, docs or man pages.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
       "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
tar -C "$dir" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  - "$tag" >/dev/null
echo "made $tag in $(( $(date +%s) - started )) s ($("$docker" image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
