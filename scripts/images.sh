#!/usr/bin/env bash
# Builds the images docker-compose.yml, the Dockerfile and the chart pull (the chart's
# test Pod, and the local node's sandbox image), under their upstream names, on the
# engine of scripts/docker.sh. No image registry is reachable from the
# machines the tests run on, so each is built here from packages: the same software
# wherever it can be had, MariaDB standing in for MySQL (a different server), and
# Grafana not at all (docs/deployment.md, "Images built here"). Users pull the real ones.
#
# One recipe a directory under tools/images/, each with `build.sh TAG RECIPE_HASH`. An
# image is rebuilt only when its recipe changed: it carries the recipe's hash in the
# label platform.recipe. Images from a base recipe are rebuilt when the base is.
#
# Usage: scripts/images.sh [build|list]    (needs: eval "$(scripts/docker.sh env)")
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"
LOG_TAG=images

# Tag and recipe, in build order (the base first). The tags are the ones
# docker-compose.yml, the Dockerfile, the chart and containerd (pause) name.
IMAGES=(
  "debian:12.12-slim debian"
  "rust:1.95.0-bookworm rust"
  "mysql:8.4.6 mysql"
  "apache/kafka:4.1.1 kafka"
  "traefik:v3.5.3 traefik"
  "prom/prometheus:v3.5.0 prometheus"
  "adminer:5.3.0 adminer"
  "curlimages/curl:8.15.0 curl"
  "registry.k8s.io/pause:3.10 pause"
)

# The hash of a recipe's files, and of the base image's recipe for the images on it.
recipe_hash() {
  local dir="$REPO_ROOT/tools/images/$1"
  {
    (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
    [ "$1" = debian ] || recipe_hash debian
  } | sha256sum | cut -c1-16
}

built_hash() {
  docker image inspect --format '{{index .Config.Labels "platform.recipe"}}' "$1" 2>/dev/null || true
}

build() {
  [ -n "${DOCKER_HOST:-}" ] || die "DOCKER_HOST is not set: eval \"\$(scripts/docker.sh up)\" first"
  local entry tag recipe hash start
  for entry in "${IMAGES[@]}"; do
    read -r tag recipe <<<"$entry"
    hash=$(recipe_hash "$recipe")
    if [ "$(built_hash "$tag")" = "$hash" ]; then
      log "$tag up to date (recipe tools/images/$recipe, $hash)"
      continue
    fi
    log "building $tag from tools/images/$recipe"
    start=$SECONDS
    "$REPO_ROOT/tools/images/$recipe/build.sh" "$tag" "$hash" >"$PLATFORM_CACHE/image-$recipe.log" 2>&1 \
      || { tail -n 30 "$PLATFORM_CACHE/image-$recipe.log" >&2; die "building $tag failed (log: $PLATFORM_CACHE/image-$recipe.log)"; }
    log "$tag built in $((SECONDS - start)) s"
  done
}

list() {
  local entry tag recipe
  for entry in "${IMAGES[@]}"; do
    read -r tag recipe <<<"$entry"
    docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}  {{.CreatedSince}}' "$tag"
  done
}

case "${1:-build}" in
  build) build ;;
  list) list ;;
  *) die "unknown command '$1' (build|list)" ;;
esac
