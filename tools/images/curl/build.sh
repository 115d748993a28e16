#!/usr/bin/env bash
# Builds the curlimages/curl stand-in (Debian's curl, see Dockerfile).
#
#   tools/images/curl/build.sh TAG RECIPE_HASH
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker build --label "platform.recipe=$2" -t "$1" "$dir" \
  || { echo "$0: building $1 (Debian curl stand-in) from $dir failed" >&2; exit 1; }
