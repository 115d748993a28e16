#!/usr/bin/env bash
# Proves the arm64 image path on an amd64 machine without Docker: the same
# cross-compilation the Dockerfile's builder stage does for TARGETARCH=arm64
# (Debian's cross toolchain, multi-arch libssl-dev:arm64 and zlib1g-dev:arm64,
# scripts/lib/cross-env.sh), then the binaries run under Debian's qemu-user:
#
#   1. installs what is missing: gcc/g++-aarch64-linux-gnu, libc6-dev-arm64-cross, libc6:arm64,
#      libssl-dev:arm64, zlib1g-dev:arm64, qemu-user, file; rustup target
#      aarch64-unknown-linux-gnu
#   2. cargo build --release --locked --target aarch64-unknown-linux-gnu of the
#      three release binaries (librdkafka compiled from source by rdkafka-sys)
#   3. `file` says "ARM aarch64" for each; their dynamic libraries are listed
#   4. each binary's --help runs under qemu-aarch64
#   5. the embedded platform (`platformctl up`: SQLite in a temporary directory,
#      librdkafka's mock cluster, ports chosen by the OS) runs under qemu-aarch64:
#      POST /register/ answers 201, the welcome notification shows up in
#      GET /notifications, SIGTERM stops it cleanly
#
# binfmt_misc is not needed (nor usually available in a container): every run is
# an explicit `qemu-aarch64 -L / ./binary`. The guest's loader and libc are the
# multi-arch libc6:arm64 (/lib/ld-linux-aarch64.so.1, /lib/aarch64-linux-gnu/), the
# same Debian libc the arm64 runtime image has. Not `-L /usr/aarch64-linux-gnu`:
# that takes ld.so from the cross toolchain's libc6-arm64-cross while libssl3:arm64
# and friends resolve libc.so.6 from the multi-arch path, and a loader and libc of
# different builds hang in the first pthread_create (seen with 2.36-8cross1 against
# 2.36-9+deb12u14).
#
# Not part of scripts/test.sh: a release build of the workspace for another
# target takes far longer than the CI budget allows on 2 cores (see
# docs/deployment.md, "arm64 images", for the last run). Run it by hand after
# changing the Dockerfile, native dependencies or Cargo.lock:
#
#   scripts/cross-arm64.sh                      # the working tree: build (or reuse), check
#   CROSS_REV=HEAD scripts/cross-arm64.sh       # a commit, from a `git archive` snapshot
#                                               # (uncommitted edits play no part)
#   CROSS_SKIP_BUILD=1 scripts/cross-arm64.sh   # only the checks, on the last build
#
# The build shares the repository's target directory (or $CARGO_TARGET_DIR): cargo
# keeps the aarch64 artifacts apart under target/aarch64-unknown-linux-gnu/.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"
LOG_TAG=cross-arm64
cd "$REPO_ROOT"

TARGET=aarch64-unknown-linux-gnu
DEB_ARCH=arm64
GNU_TRIPLET=aarch64-linux-gnu
QEMU_SYSROOT=/
BINARIES=(user-service notification-service platformctl)
# Emulated start-up (SQLite migrations, the mock cluster) and delivery are slow
# under qemu; these bound the waits, they are not sleeps.
START_TIMEOUT=${CROSS_START_TIMEOUT:-180}
DELIVERY_TIMEOUT=${CROSS_DELIVERY_TIMEOUT:-120}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
OUT_DIR="$CARGO_TARGET_DIR/$TARGET/release"

started=$SECONDS
declare -a timings=()
phase_started=0
phase() { phase_started=$SECONDS; printf '\n[cross-arm64] === %s\n' "$*"; }
phase_done() { timings+=("$(printf '%-34s %5ss' "$1" "$((SECONDS - phase_started))")"); }

qemu() { qemu-aarch64 -L "$QEMU_SYSROOT" "$@"; }

install_toolchain() {
  phase "toolchain"
  if ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
    log "dpkg --add-architecture $DEB_ARCH"
    if [ "$(id -u)" = 0 ]; then dpkg --add-architecture "$DEB_ARCH"; else sudo dpkg --add-architecture "$DEB_ARCH"; fi
    apt_updated=""
  fi
  local wanted=("gcc-$GNU_TRIPLET" "g++-$GNU_TRIPLET" "libc6-dev-$DEB_ARCH-cross"
    "libc6:$DEB_ARCH" "libssl-dev:$DEB_ARCH" "zlib1g-dev:$DEB_ARCH" qemu-user file pkg-config make perl)
  local missing=() p
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  command -v rustup >/dev/null || die "rustup is needed to add the $TARGET standard library"
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "rustup target add $TARGET"
    rustup target add "$TARGET" >/dev/null || die "rustup target add $TARGET failed"
  fi
  log "$("$GNU_TRIPLET-gcc" --version | head -1); $(qemu-aarch64 --version | head -1); rustc $(rustc -V | cut -d' ' -f2)"
  phase_done "toolchain (install or reuse)"
}

build() {
  phase "cargo build --release --target $TARGET"
  local src=$REPO_ROOT
  if [ -n "${CROSS_REV:-}" ]; then
    # A fixed place, and git archive's file times (the commit's): a second run of the
    # same commit finds nothing to rebuild.
    src="$CARGO_TARGET_DIR/cross-arm64-src"
    rm -rf "$src"
    mkdir -p "$src"
    git -C "$REPO_ROOT" archive "$CROSS_REV" | tar -x -C "$src" || die "cannot export $CROSS_REV"
    log "building $CROSS_REV ($(git -C "$REPO_ROOT" rev-parse --short "$CROSS_REV")) from a snapshot in $src"
  fi
  if [ -n "${CROSS_SKIP_BUILD:-}" ]; then
    log "CROSS_SKIP_BUILD set: using the binaries in $OUT_DIR"
  else
    (
      cd "$src"
      # shellcheck source=scripts/lib/cross-env.sh
      . scripts/lib/cross-env.sh "$TARGET"
      cargo build --release --locked -p user-service -p notification-service -p platformctl
    ) || die "the cross build failed"
  fi
  phase_done "cargo build (release, $TARGET)"
}

check_binaries() {
  phase "binaries: file, dynamic libraries, --help under qemu"
  local b desc needed
  for b in "${BINARIES[@]}"; do
    [ -x "$OUT_DIR/$b" ] || die "$OUT_DIR/$b is missing"
    desc=$(file -b "$OUT_DIR/$b")
    case $desc in
      *"ARM aarch64"*) ;;
      *) die "$b is not an aarch64 binary: $desc" ;;
    esac
    needed=$("$GNU_TRIPLET-readelf" -d "$OUT_DIR/$b" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
    log "$b: $(du -h "$OUT_DIR/$b" | cut -f1), ${desc%%,*}, ARM aarch64; links: $needed"
    # librdkafka is compiled from source by rdkafka-sys and linked statically.
    "$GNU_TRIPLET-nm" "$OUT_DIR/$b" >"$WORK/$b.nm" 2>/dev/null || die "nm cannot read $b"
    grep -q ' T rd_kafka_new$' "$WORK/$b.nm" || die "$b does not contain librdkafka (no rd_kafka_new symbol)"
    qemu "$OUT_DIR/$b" --help >"$WORK/$b-help.txt" 2>&1 \
      || { cat "$WORK/$b-help.txt" >&2; die "$b --help failed under qemu-aarch64"; }
    grep -q '^Usage:' "$WORK/$b-help.txt" || { cat "$WORK/$b-help.txt" >&2; die "$b --help printed no usage"; }
    log "$b --help under qemu-aarch64: $(grep -m1 '^Usage:' "$WORK/$b-help.txt")"
  done
  log "librdkafka $(sed -n '/^name = "rdkafka-sys"/{n;s/^version = "[^+]*+\(.*\)"/\1/p}' Cargo.lock) is linked statically into all ${#BINARIES[@]} (rd_kafka_new defined)"
  phase_done "file + --help of ${#BINARIES[@]} binaries"
}

http() { curl -sS --max-time 30 "$@"; }

run_platform() {
  phase "embedded platform under qemu-aarch64"
  local token email status body location user_url notif_url deadline
  token="cross-$RANDOM$RANDOM"
  email="arm64-$RANDOM@example.com"
  # qemu-aarch64 itself in the background (not through the qemu function, whose
  # subshell would take the SIGTERM below instead of the platform).
  qemu-aarch64 -L "$QEMU_SYSROOT" "$OUT_DIR/platformctl" up --data-dir "$WORK/data" \
    --user-addr 127.0.0.1:0 --notification-addr 127.0.0.1:0 \
    --admin-token "$token" --log-format json >"$WORK/up.log" 2>&1 &
  PLATFORM_PID=$!
  deadline=$((SECONDS + START_TIMEOUT))
  until grep -q 'notification-service  http://' "$WORK/up.log"; do
    kill -0 "$PLATFORM_PID" 2>/dev/null || { cat "$WORK/up.log" >&2; die "platformctl up exited during start-up"; }
    [ $SECONDS -lt $deadline ] || { cat "$WORK/up.log" >&2; die "platformctl up did not start within ${START_TIMEOUT}s"; }
    sleep 0.5
  done
  user_url=$(sed -n 's/^  user-service  *\(http:\/\/[0-9.:]*\) .*/\1/p' "$WORK/up.log" | head -1)
  notif_url=$(sed -n 's/^  notification-service  *\(http:\/\/[0-9.:]*\) .*/\1/p' "$WORK/up.log" | head -1)
  if [ -z "$user_url" ] || [ -z "$notif_url" ]; then
    cat "$WORK/up.log" >&2
    die "cannot read the service addresses from the banner"
  fi
  log "started in $((SECONDS - phase_started))s: user-service $user_url, notification-service $notif_url"

  status=$(http -o "$WORK/register.json" -D "$WORK/register.headers" -w '%{http_code}' \
    -X POST "$user_url/register/" -H 'content-type: application/json' \
    -d "{\"user_name\": \"Arm Sixtyfour\", \"email\": \"$email\"}") || die "POST /register/ failed"
  [ "$status" = 201 ] || { cat "$WORK/register.json" >&2; die "POST /register/ answered $status, want 201"; }
  location=$(tr -d '\r' <"$WORK/register.headers" | sed -n 's/^[Ll]ocation: //p')
  log "POST /register/ -> 201, Location: $location"

  deadline=$((SECONDS + DELIVERY_TIMEOUT))
  until body=$(http -H "authorization: Bearer $token" "$notif_url/notifications?limit=50") \
      && grep -q "\"$email\"" <<<"$body"; do
    kill -0 "$PLATFORM_PID" 2>/dev/null || { cat "$WORK/up.log" >&2; die "platformctl up exited"; }
    [ $SECONDS -lt $deadline ] || { printf '%s\n' "$body" >&2; die "no notification for $email within ${DELIVERY_TIMEOUT}s"; }
    sleep 0.5
  done
  log "GET /notifications lists the welcome notification for $email"
  status=$(http -o /dev/null -w '%{http_code}' "$notif_url/notifications") || die "GET /notifications failed"
  [ "$status" = 401 ] || die "GET /notifications without the token answered $status, want 401"
  log "GET /notifications without the token -> 401"

  kill -TERM "$PLATFORM_PID"
  local rc=0
  wait "$PLATFORM_PID" || rc=$?
  PLATFORM_PID=""
  [ "$rc" = 0 ] || { cat "$WORK/up.log" >&2; die "platformctl up exited with $rc after SIGTERM"; }
  grep -q '^platform stopped' "$WORK/up.log" || { cat "$WORK/up.log" >&2; die "no clean shutdown message"; }
  log "SIGTERM: stopped cleanly (exit 0)"
  phase_done "platform up, register, notify, stop"
}

cleanup() {
  if [ -n "${PLATFORM_PID:-}" ]; then
    kill -TERM "$PLATFORM_PID" 2>/dev/null || true
    wait "$PLATFORM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}

main() {
  WORK=$(mktemp -d)
  PLATFORM_PID=""
  trap cleanup EXIT
  command -v curl >/dev/null || apt_install curl
  install_toolchain
  build
  check_binaries
  run_platform
  printf '\n[cross-arm64] all arm64 checks passed in %ss (%s)\n' "$((SECONDS - started))" "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf '  %s\n' "${timings[@]}"
}

main "$@"
