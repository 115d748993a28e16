#!/usr/bin/env bash
# Builds the apache/kafka:4.1.1 stand-in (see Dockerfile): stages a build context with
# the Kafka jars scripts/deps.sh resolves from Maven Central next to this directory's
# recipe (Dockerfile, bin/, docker/), then builds it with the engine from
# `eval "$(scripts/docker.sh env)"`.
#
#   tools/images/kafka/build.sh TAG RECIPE_HASH
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
tag=$1 recipe_hash=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
die() { echo "[kafka-image] FAILED: $*" >&2; exit 1; }

# Pinned: the image is named after this release, whatever KAFKA_VERSION the caller has.
version=4.1.1
libs=$(KAFKA_VERSION=$version "$repo/scripts/deps.sh" kafka-jars) \
  || die "scripts/deps.sh kafka-jars could not provide the Kafka $version jars"
[[ -f "$libs/kafka_2.13-$version.jar" && -f "$libs/kafka-tools-$version.jar" ]] \
  || die "kafka_2.13-$version.jar or kafka-tools-$version.jar missing in '$libs'"

# A fresh context: only what the image needs, nothing else of the repository.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -r "$libs" "$ctx/libs"
cp -r "$here/Dockerfile" "$here/bin" "$here/docker" "$ctx/"

docker build --label "platform.recipe=$recipe_hash" -t "$tag" "$ctx" \
  || die "docker build of $tag failed (context was $here plus $libs)"
