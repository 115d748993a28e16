#!/usr/bin/env bash
# Builds the mysql:8.4.6 stand-in (MariaDB from Debian, see Dockerfile) from this
# directory, labelled platform.recipe=RECIPE_HASH (the caller's hash of this recipe).
#
#   tools/images/mysql/build.sh TAG RECIPE_HASH
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker build --label "platform.recipe=$2" -t "$1" "$dir" \
  || { echo "$0: building $1 (MariaDB stand-in for mysql) from $dir failed" >&2; exit 1; }
