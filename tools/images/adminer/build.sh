#!/usr/bin/env bash
# Builds the adminer:5.3.0 stand-in (Debian's Adminer 4.8.1, see Dockerfile) from this
# directory, labelled platform.recipe=RECIPE_HASH (the caller's hash of this recipe).
#
#   tools/images/adminer/build.sh TAG RECIPE_HASH
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker build --label "platform.recipe=$2" -t "$1" "$dir" \
  || { echo "$0: building $1 (Adminer 4.8.1 stand-in) from $dir failed" >&2; exit 1; }
