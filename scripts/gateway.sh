#!/usr/bin/env bash
# Runs the compose stack's gateway, a real Traefik, in front of local service processes.
#
#   scripts/gateway.sh build
#       builds Traefik at the version docker-compose.yml pins (once; cached by version
#       under ${PLATFORM_CACHE:-~/.cache/platform}/bin) and prints the binary's path
#   scripts/gateway.sh up user-service=127.0.0.1:PORT notification-service=127.0.0.1:PORT \
#                         prediction-service=127.0.0.1:PORT
#       starts it in the background and prints the exports of `env` (every service
#       deploy/traefik/dynamic.yml routes to needs its address)
#   scripts/gateway.sh env     prints GATEWAY_URL (entry point "web") and GATEWAY_API_URL
#                              (entry point "traefik": API, dashboard, /metrics, /ping)
#   scripts/gateway.sh down    stops it
#
#   GATEWAY_DIR   state directory (default target/gateway): pid, log, generated config
#
# Traefik runs with the SAME static flags as the traefik service of docker-compose.yml,
# read from that file each time; only the entry point addresses become 127.0.0.1 ports
# in 18080-18099 (the first free pair) and the file provider reads a copy of
# deploy/traefik/dynamic.yml in which only the servers' host:port are swapped for the
# local processes (docs/deployment.md, "The gateway in the tests", says why).
#
# Traefik v3 cannot be `go install`ed (its go.mod has replace directives): the wrapper
# module tools/traefik-build requires it at the pinned version and repeats the replaces.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/lib/deploy-tools.sh
source scripts/lib/deploy-tools.sh
LOG_TAG=gateway LOG_FD=2

GATEWAY_DIR="${GATEWAY_DIR:-$REPO_ROOT/target/gateway}"
PORT_FIRST=18080
PORT_LAST=18099

traefik_version() {
  local version
  version=$(sed -n 's/^ *image: *traefik:\(v[0-9][0-9.]*\) *$/\1/p' docker-compose.yml | head -1)
  [ -n "$version" ] || die "docker-compose.yml has no traefik:vX.Y.Z image"
  echo "$version"
}

# Builds (once) and prints the path of Traefik at the version compose pins.
build() {
  local version bin dir=tools/traefik-build
  version=$(traefik_version)
  grep -Eq "^[[:space:]]*(require )?github.com/traefik/traefik/v3 $version( |\$)" "$dir/go.mod" \
    || die "$dir/go.mod does not require traefik $version (the version docker-compose.yml pins): update it and its replaces"
  bin="$TOOLS_BIN/traefik-$version"
  if [ ! -x "$bin" ]; then
    ensure_go
    log "building Traefik $version from the Go module proxy ($dir; takes a few minutes once)"
    local start=$SECONDS
    (cd "$dir" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -trimpath \
      -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version" \
      -o "$bin.tmp" github.com/traefik/traefik/v3/cmd/traefik) || die "building Traefik $version failed"
    mv "$bin.tmp" "$bin"
    log "Traefik $version built in $((SECONDS - start))s: $bin"
  fi
  echo "$bin"
}

# The command flags of the traefik service in docker-compose.yml, one a line.
compose_flags() {
  awk '
    /^  [A-Za-z0-9_-]+:[ ]*$/ { in_svc = ($1 == "traefik:"); in_cmd = 0; next }
    !in_svc { next }
    /^    command:/ { in_cmd = 1; next }
    in_cmd && /^      - / { sub(/^      - /, ""); print; next }
    in_cmd && /^ *#/ { next }
    in_cmd && /^    [A-Za-z]/ { in_cmd = 0 }
  ' docker-compose.yml
}

# The router names of a dynamic configuration file (the keys under http.routers).
router_names() {
  awk '
    /^  routers:[ ]*$/ { in_routers = 1; next }
    in_routers && /^  [^ ]/ { in_routers = 0 }
    in_routers && /^    [A-Za-z0-9_-]+:[ ]*$/ { sub(/^    /, ""); sub(/:[ ]*$/, ""); print }
  ' "$1"
}

port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

env_out() {
  [ -f "$GATEWAY_DIR/ports" ] || die "no gateway started from $GATEWAY_DIR (scripts/gateway.sh up)"
  local web api
  read -r web api <"$GATEWAY_DIR/ports"
  printf 'export GATEWAY_URL=http://127.0.0.1:%s\n' "$web"
  printf 'export GATEWAY_API_URL=http://127.0.0.1:%s\n' "$api"
  printf 'export GATEWAY_LOG=%s\n' "$GATEWAY_DIR/traefik.log"
}

running() {
  [ -f "$GATEWAY_DIR/pid" ] && kill -0 "$(cat "$GATEWAY_DIR/pid")" 2>/dev/null
}

down() {
  if running; then
    local pid deadline=$((SECONDS + 15))
    pid=$(cat "$GATEWAY_DIR/pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; break; }
      sleep 0.1
    done
    log "stopped Traefik (pid $pid)"
  fi
  rm -f "$GATEWAY_DIR/pid" "$GATEWAY_DIR/ports"
}

up() {
  local -A upstream=()
  local arg
  for arg in "$@"; do
    [[ $arg =~ ^([a-z0-9-]+)=([0-9.]+:[0-9]+)$ ]] || die "expected NAME=HOST:PORT, got '$arg'"
    upstream[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done
  running && die "a gateway from $GATEWAY_DIR is running (scripts/gateway.sh down)"
  local bin
  bin=$(build)
  mkdir -p "$GATEWAY_DIR"

  # dynamic.yml with only the servers' host:port swapped; every other line verbatim.
  local dynamic="$GATEWAY_DIR/dynamic.yml" line host swapped=0 servers=0
  : >"$dynamic"
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^([[:space:]]*-[[:space:]]*url:[[:space:]]*http://)([a-z0-9-]+):([0-9]+)(.*)$ ]]; then
      servers=$((servers + 1))
      host=${BASH_REMATCH[2]}
      [ -n "${upstream[$host]:-}" ] || die "deploy/traefik/dynamic.yml routes to $host: give $host=HOST:PORT"
      line="${BASH_REMATCH[1]}${upstream[$host]}${BASH_REMATCH[4]}"
      swapped=$((swapped + 1))
    fi
    printf '%s\n' "$line" >>"$dynamic"
  done <deploy/traefik/dynamic.yml
  [ "$servers" -gt 0 ] || die "no 'url: http://host:port' servers found in deploy/traefik/dynamic.yml"
  [ "$(diff deploy/traefik/dynamic.yml "$dynamic" | grep -c '^>')" -eq "$swapped" ] \
    || die "the generated dynamic.yml differs in more than the server addresses"

  # Two free ports in the range: entry points "web" and "traefik".
  local web="" api="" p
  for ((p = PORT_FIRST; p <= PORT_LAST; p++)); do
    port_free "$p" || continue
    if [ -z "$web" ]; then web=$p; else api=$p; break; fi
  done
  [ -n "$api" ] || die "no two free ports in 127.0.0.1:$PORT_FIRST-$PORT_LAST"

  # The compose flags; exactly the addresses and the file provider's path change.
  local flags=() flag changed=0
  while IFS= read -r flag; do
    case $flag in
      --entrypoints.web.address=*) flag="--entrypoints.web.address=127.0.0.1:$web"; changed=$((changed + 1)) ;;
      --entrypoints.traefik.address=*) flag="--entrypoints.traefik.address=127.0.0.1:$api"; changed=$((changed + 1)) ;;
      --providers.file.filename=*) flag="--providers.file.filename=$dynamic"; changed=$((changed + 1)) ;;
    esac
    flags+=("$flag")
  done < <(compose_flags)
  [ "$changed" -eq 3 ] || die "docker-compose.yml's traefik command no longer has the two entry point addresses and the file provider path this script swaps"
  printf '%s\n' "${flags[@]}" >"$GATEWAY_DIR/flags"

  "$bin" "${flags[@]}" >"$GATEWAY_DIR/traefik.log" 2>&1 &
  echo $! >"$GATEWAY_DIR/pid"
  echo "$web $api" >"$GATEWAY_DIR/ports"
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$api/ping" 2>/dev/null; do
    running || { tail -20 "$GATEWAY_DIR/traefik.log" >&2; rm -f "$GATEWAY_DIR/pid" "$GATEWAY_DIR/ports"; die "Traefik exited"; }
    [ $SECONDS -lt $deadline ] || { down; die "Traefik did not answer /ping within 30s (log: $GATEWAY_DIR/traefik.log)"; }
    sleep 0.1
  done
  # Every router of the file loaded from the file provider.
  local routers missing
  mapfile -t routers < <(router_names "$dynamic")
  [ "${#routers[@]}" -gt 0 ] || { down; die "no routers found in $dynamic"; }
  deadline=$((SECONDS + 30))
  while :; do
    missing=$(curl -fsS --max-time 2 "http://127.0.0.1:$api/api/http/routers" 2>/dev/null \
      | python3 -c 'import json, sys
loaded = {r["name"] for r in json.load(sys.stdin)}
print(" ".join(n for n in sys.argv[1:] if n + "@file" not in loaded))' "${routers[@]}" 2>/dev/null \
      || echo "${routers[*]}")
    [ -n "$missing" ] || break
    [ $SECONDS -lt $deadline ] || { down; die "Traefik did not load the routers $missing of $dynamic"; }
    sleep 0.1
  done
  log "Traefik $(traefik_version) on 127.0.0.1:$web (API 127.0.0.1:$api), pid $(cat "$GATEWAY_DIR/pid")"
  env_out
}

case "${1:-}" in
  build) build ;;
  up) shift; up "$@" ;;
  env) env_out ;;
  down) down ;;
  *) sed -n '2,20s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
