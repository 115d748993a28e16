#!/usr/bin/env bash
# tract, the pure-Rust ONNX runtime, run on the parity fixture: the second reference the
# prediction-service's own forest evaluator is compared with (prediction-service/tests/
# parity.rs compares it with scikit-learn's fixture and with what this script writes).
#
#   scripts/tract-parity.sh build                 builds tools/tract-parity once and prints
#                                                 the binary's path
#   scripts/tract-parity.sh predict OUT [MODEL]   writes tract's class and probabilities for
#                                                 every row of models/wine-forest-parity.json
#                                                 to OUT (MODEL: models/wine-forest.onnx)
#   scripts/tract-parity.sh bench [MODEL]         tract's rows per second on those rows
#
# tools/tract-parity is a Cargo project of its own, outside the workspace: compiling tract
# takes minutes, so it is built once into ${PLATFORM_CACHE:-~/.cache/platform}/bin, under
# a name made of the pinned tract-onnx version and a hash of the tool's sources (its
# Cargo.lock included), and rebuilt only when one of them changes. Its target directory
# lives in the cache too, so the workspace's target/ never holds tract.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"
LOG_TAG=tract LOG_FD=2
TOOL_DIR="$REPO_ROOT/tools/tract-parity"
FIXTURE="$REPO_ROOT/models/wine-forest-parity.json"
DEFAULT_MODEL="$REPO_ROOT/models/wine-forest.onnx"


# The exact tract-onnx version tools/tract-parity/Cargo.toml pins ("=X.Y.Z").
tract_version() {
  local version
  version=$(sed -n 's/^tract-onnx = "=\([0-9][0-9.]*\)"$/\1/p' "$TOOL_DIR/Cargo.toml")
  [ -n "$version" ] || die "tools/tract-parity/Cargo.toml does not pin tract-onnx to an exact version (tract-onnx = \"=X.Y.Z\")"
  echo "$version"
}

# Builds (once per version and source change) and prints the path of the binary.
build() {
  local version hash bin_dir bin
  version=$(tract_version)
  hash=$(cd "$TOOL_DIR" && cat Cargo.toml Cargo.lock src/*.rs | sha256sum | cut -c1-12)
  bin_dir="$PLATFORM_CACHE/bin"
  bin="$bin_dir/tract-parity-$version-$hash"
  if [ ! -x "$bin" ]; then
    command -v cargo >/dev/null || die "cargo not found: tools/tract-parity needs Rust (rustup) to build"
    log "building tools/tract-parity with tract-onnx $version (release; several minutes the first time)"
    local start=$SECONDS target="$PLATFORM_CACHE/cargo-target/tract-parity"
    mkdir -p "$bin_dir"
    (cd "$TOOL_DIR" && CARGO_TARGET_DIR="$target" cargo build --release --locked >&2) \
      || die "building tools/tract-parity (tract-onnx $version) failed: it needs the crate registry to download tract once, and a Cargo.lock that matches its Cargo.toml (cd tools/tract-parity && cargo build --release --locked)"
    cp "$target/release/tract-parity" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    find "$bin_dir" -name 'tract-parity-*' ! -name "${bin##*/}" -type f -delete
    log "tools/tract-parity built in $((SECONDS - start))s: $bin"
  fi
  echo "$bin"
}

predict() {
  local out=${1:?usage: scripts/tract-parity.sh predict OUT [MODEL]} model=${2:-$DEFAULT_MODEL} bin
  bin=$(build)
  "$bin" "$model" "$FIXTURE" >"$out.tmp" || die "tract could not evaluate $model on $FIXTURE"
  mv "$out.tmp" "$out"
  log "tract's predictions for $(grep -c '"class"' "$out") rows of ${model#"$REPO_ROOT"/}: $out"
}

bench() {
  local model=${1:-$DEFAULT_MODEL} bin
  bin=$(build)
  "$bin" "$model" "$FIXTURE" --bench
}

case "${1:-}" in
  build) build ;;
  predict) shift && predict "$@" ;;
  bench) shift && bench "$@" ;;
  *) die "usage: scripts/tract-parity.sh build | predict OUT [MODEL] | bench [MODEL]" ;;
esac
