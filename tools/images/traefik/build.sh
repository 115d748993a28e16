#!/usr/bin/env bash
# Builds the traefik stand-in image (Dockerfile says why and what).
#
#   tools/images/traefik/build.sh TAG RECIPE_HASH      e.g. TAG=traefik:v3.5.3
#
# The binary is scripts/gateway.sh's build: Traefik at the version docker-compose.yml
# pins, from the Go module proxy, cached by version under $PLATFORM_CACHE/bin.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
tag=$1 recipe_hash=$2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
die() { echo "[traefik-image] FAILED: $*" >&2; exit 1; }

bin=$("$repo/scripts/gateway.sh" build) || die "building Traefik failed (scripts/gateway.sh build)"
# gateway.sh builds the version compose pins; the image must be tagged with that one.
[ "${bin##*/traefik-}" = "${tag##*:}" ] || die "$bin is not the version $tag names"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/traefik"
cp "$here/Dockerfile" "$here/entrypoint.sh" "$ctx/"
chmod 755 "$ctx/traefik" "$ctx/entrypoint.sh"
docker build --label "platform.recipe=$recipe_hash" -t "$tag" "$ctx" \
  || die "docker build of $tag failed"
