#!/usr/bin/env bash
# Builds the registry.k8s.io/pause stand-in (Dockerfile says why) from main.go.
#
#   tools/images/pause/build.sh TAG RECIPE_HASH
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/pause" .) \
  || { echo "$0: building the pause program failed" >&2; exit 1; }
cp "$here/Dockerfile" "$ctx/"
docker build --label "platform.recipe=$2" -t "$1" "$ctx" \
  || { echo "$0: building $1 failed" >&2; exit 1; }
