#!/usr/bin/env bash
# Fuzzes the HTTP APIs of both services from their own OpenAPI documents with
# schemathesis (PyPI), against the embedded platform: fails on any 5xx, any status,
# content type or body the document does not declare, or a crash.
#
#   scripts/fuzz-api.sh [EXAMPLES]     (default 100 examples per operation)
#
# Needs the debug build of platformctl (cargo build --workspace; scripts/test.sh does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${1:-100}
CACHE="${PLATFORM_CACHE:-$HOME/.cache/platform}"
VENV="$CACHE/venv-schemathesis-$SCHEMATHESIS_VERSION"
LOG_TAG=fuzz

if [ ! -x "$VENV/bin/st" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV" || die "python3 venv is missing (apt-get install python3-venv)"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" || die "cannot install schemathesis from PyPI"
fi

binary=target/debug/platformctl
[ -x "$binary" ] || die "$binary is missing: run cargo build --workspace first"

users_port=$(free_port)
notifications_port=$(free_port)
data=$(mktemp -d)
token=fuzz-$RANDOM$RANDOM
ADMIN_TOKEN=$token RUST_LOG=error "$binary" up --data-dir "$data" \
  --user-addr "127.0.0.1:$users_port" --notification-addr "127.0.0.1:$notifications_port" >"$data/platform.log" 2>&1 &
platform=$!
trap 'kill -INT $platform 2>/dev/null; wait $platform 2>/dev/null; rm -rf "$data"' EXIT

for port in "$users_port" "$notifications_port"; do
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/health/live" 2>/dev/null && break
    kill -0 $platform 2>/dev/null || { cat "$data/platform.log"; die "the platform did not start"; }
    sleep 0.1
  done
done

status=0
for port in "$users_port" "$notifications_port"; do
  log "fuzzing http://127.0.0.1:$port/openapi.json ($EXAMPLES examples per operation)"
  "$VENV/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --max-examples "$EXAMPLES" --seed 20261123 --phases examples,coverage,fuzzing \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --header "Authorization: Bearer $token" --warnings off --request-timeout 10 || status=1
done
kill -0 $platform 2>/dev/null || { cat "$data/platform.log"; die "the platform crashed under fuzzing"; }
[ "$status" -eq 0 ] || die "schemathesis found problems (see above)"
log "no 5xx, no schema violation, no crash"
