#!/usr/bin/env bash
# Builds the prom/prometheus stand-in image (Dockerfile says why and what).
#
#   tools/images/prometheus/build.sh TAG RECIPE_HASH      e.g. TAG=prom/prometheus:v3.5.0
#
# Prometheus and promtool are built from the Go module proxy through the wrapper
# module tools/prometheus-build (its go.mod says why a wrapper), once per version:
# $PLATFORM_CACHE/bin/{prometheus,promtool}-vX.Y.Z. Like the official release: static
# (CGO off, tag netgo), version data in the binary; not the builtinassets tag, whose
# UI assets come from an npm build this does not do.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 TAG RECIPE_HASH" >&2; exit 2; }
tag=$1 recipe_hash=$2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$here/../../.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
source "$REPO_ROOT/scripts/lib/deploy-tools.sh"
LOG_TAG=prometheus-image LOG_FD=2

version=${tag##*:v}
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "$tag: expected a tag vX.Y.Z"
# Prometheus 3.x is published as Go module version v0.3MM.P (3.5.0 -> v0.305.0).
module_version=$(printf 'v0.%d%02d.%d' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}")
mod=github.com/prometheus/prometheus dir="$REPO_ROOT/tools/prometheus-build"
grep -Eq "^[[:space:]]*(require )?$mod $module_version( |\$)" "$dir/go.mod" \
  || die "$dir/go.mod does not require $mod $module_version (Prometheus $version): update it"
# The commit the official $version binary reports (prometheus --version).
case $version in
  3.5.0) revision=8be3a9560fbdd18a94dedec4b747c35178177202 ;;
  *) revision=unknown ;;
esac

ensure_go
bin="$TOOLS_BIN/prometheus-v$version" tool="$TOOLS_BIN/promtool-v$version"
if [ ! -x "$bin" ] || [ ! -x "$tool" ]; then
  log "building Prometheus $version ($mod $module_version) from the Go module proxy (takes several minutes once)"
  start=$SECONDS
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  v=github.com/prometheus/common/version
  (cd "$dir" && CGO_ENABLED=0 nice go build -trimpath -tags netgo -o "$out/" -ldflags "-s -w \
    -X $v.Version=$version -X $v.Revision=$revision -X $v.Branch=HEAD \
    -X $v.BuildUser=$(id -un)@$(hostname) -X $v.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)" \
    "$mod/cmd/prometheus" "$mod/cmd/promtool") || die "building Prometheus $version failed"
  mv "$out/prometheus" "$bin" && mv "$out/promtool" "$tool"
  log "Prometheus $version built in $((SECONDS - start))s: $bin"
fi

# The context: the binaries and, from the module's source, what the official image
# copies beside them (example config, LICENSE, NOTICE).
ctx=$(mktemp -d)
trap 'rm -rf "$ctx" "${out:-}"' EXIT
src=$(cd "$dir" && go mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || die "cannot locate the source of $mod $module_version in the module cache"
cp "$bin" "$ctx/prometheus" && cp "$tool" "$ctx/promtool"
cp "$src/documentation/examples/prometheus.yml" "$src/LICENSE" "$src/NOTICE" "$ctx/"
chmod u+w "$ctx"/*  # the module cache's files are read-only
cp "$here/Dockerfile" "$ctx/"
docker build --label "platform.recipe=$recipe_hash" -t "$tag" "$ctx" \
  || die "docker build of $tag failed"
