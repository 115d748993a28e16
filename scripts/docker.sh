#!/usr/bin/env bash
# Installs, starts and reuses the Docker engine the container tests use:
#   * dockerd 20.10 with its containerd and runc (Debian's docker.io), BuildKit on
#   * the Docker Compose v2 CLI plugin, built once from tools/compose-build
#
# The engine lives in a network namespace of its own (/run/netns/$DOCKER_NETNS): its
# bridges, its iptables rules (Debian's legacy binaries) and every published port stay
# inside it, so the machine's own rules and ports (MariaDB on 3306, Kafka on 9092/9094)
# are untouched and compose's default ports are free. slirp4netns gives the namespace a
# user-mode route out (image builds download crates and Debian packages) without a rule
# on the machine. Enter it with `nsenter --net=/run/netns/$DOCKER_NETNS` (not
# `ip netns exec`, which remounts /sys and hides the cgroup mounts from dockerd).
#
# Its data root is under the platform cache, so images and BuildKit's cache mounts
# survive between runs. Like scripts/deps.sh, the daemons are detached (setsid) and
# stopped by pid.
#
# Usage: scripts/docker.sh [up|env|status|down|help]
#   up (default)  install, build the compose plugin if needed, start (or reuse), print exports
#   env           print only the `export` lines:  eval "$(scripts/docker.sh env)"
#   status        whether the engine answers, and its version
#   down          stop dockerd and slirp4netns (images and volumes are kept)
#
# The exports: DOCKER_HOST (the engine's socket), DOCKER_CONFIG (a client configuration
# directory holding the compose plugin), DOCKER_BUILDKIT=1, DOCKER_NETNS_PATH, and PATH
# with the engine's own `docker` client (20.10, which builds with the engine's BuildKit
# without the buildx plugin) first. Tests never use another engine.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"
LOG_TAG=docker LOG_FD=2 DIE_WORD=ERROR

COMPOSE_VERSION=v2.40.3
COMPOSE_BUILD_DIR="$REPO_ROOT/tools/compose-build"
DOCKER_HOME="$PLATFORM_CACHE/docker"
DOCKER_NETNS="${DOCKER_NETNS:-platform-docker}"
NETNS_PATH="/run/netns/$DOCKER_NETNS"
RUN_DIR="$DOCKER_HOME/run"
SOCKET="$RUN_DIR/docker.sock"
DOCKERD_PIDFILE="$RUN_DIR/dockerd.pid"
SLIRP_PIDFILE="$RUN_DIR/slirp4netns.pid"
DOCKERD_LOG="$DOCKER_HOME/dockerd.log"
CLIENT_CONFIG="$DOCKER_HOME/config"
CLIENT_BIN="$DOCKER_HOME/bin"
START_TIMEOUT_S="${DOCKER_START_TIMEOUT_S:-60}"

pid_of() { if [[ -r "$1" ]]; then cat "$1"; fi; }
engine_answers() { DOCKER_HOST="unix://$SOCKET" /usr/bin/docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
in_netns() { nsenter --net="$NETNS_PATH" "$@"; }

ensure_installed() {
  [[ $EUID -eq 0 ]] || die "the Docker engine needs root (no sudo handling here)"
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/sbin/iptables-legacy ]] || missing+=(iptables)
  command -v slirp4netns >/dev/null || missing+=(slirp4netns)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
  [[ -x /usr/bin/docker && -x /usr/sbin/dockerd ]] || die "docker.io is installed but /usr/bin/docker or /usr/sbin/dockerd is missing"
  # dockerd finds iptables on its PATH: Debian's legacy binaries, as the engine expects.
  IPTABLES_BIN=$(legacy_iptables_dir)
  mkdir -p "$CLIENT_BIN"
  # The engine's own client first on PATH: 20.10 uses the engine's BuildKit directly.
  ln -sfn /usr/bin/docker "$CLIENT_BIN/docker"
}

# The compose plugin, built once per version (its go.mod has exclude directives, so
# `go install module@version` refuses it; tools/compose-build repeats them).
ensure_compose() {
  local bin="$PLATFORM_CACHE/bin/docker-compose-$COMPOSE_VERSION"
  grep -Eq "^[[:space:]]*(require )?github.com/docker/compose/v2 $COMPOSE_VERSION( |\$)" "$COMPOSE_BUILD_DIR/go.mod" \
    || die "$COMPOSE_BUILD_DIR/go.mod does not require compose $COMPOSE_VERSION"
  if [[ ! -x "$bin" ]]; then
    command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null || die "Go is needed to build the compose plugin (install golang-go)"
    log "building Docker Compose $COMPOSE_VERSION from the Go module proxy (once)"
    local start=$SECONDS
    mkdir -p "$(dirname "$bin")"
    (cd "$COMPOSE_BUILD_DIR" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
      -o "$bin.tmp" github.com/docker/compose/v2/cmd) >&2 || die "building Docker Compose $COMPOSE_VERSION failed"
    mv "$bin.tmp" "$bin"
    log "Docker Compose $COMPOSE_VERSION built in $((SECONDS - start))s"
  fi
  mkdir -p "$CLIENT_CONFIG/cli-plugins"
  ln -sfn "$bin" "$CLIENT_CONFIG/cli-plugins/docker-compose"
}

ensure_netns() {
  if [[ ! -e "$NETNS_PATH" ]]; then
    log "creating network namespace $DOCKER_NETNS"
    ip netns add "$DOCKER_NETNS"
  fi
  in_netns ip link set lo up
  if ! pid_alive "$(pid_of "$SLIRP_PIDFILE")"; then
    log "starting slirp4netns (the namespace's route out)"
    setsid slirp4netns --configure --mtu=65520 --disable-host-loopback \
      --netns-type=path "$NETNS_PATH" tap0 </dev/null >>"$DOCKER_HOME/slirp4netns.log" 2>&1 &
    echo $! >"$SLIRP_PIDFILE"
    local deadline=$((SECONDS + 10))
    until in_netns ip -4 route show default | grep -q tap0; do
      ((SECONDS < deadline)) || die "slirp4netns gave the namespace no route; see $DOCKER_HOME/slirp4netns.log"
      sleep 0.2
    done
  fi
}

write_daemon_config() {
  cat >"$DOCKER_HOME/daemon.json" <<EOF
{
  "data-root": "$DOCKER_HOME/data",
  "exec-root": "$DOCKER_HOME/exec",
  "pidfile": "$DOCKERD_PIDFILE",
  "hosts": ["unix://$SOCKET"],
  "storage-driver": "overlay2",
  "features": { "buildkit": true },
  "builder": { "gc": { "enabled": true, "defaultKeepStorage": "20GB" } }
}
EOF
}

start() {
  ensure_installed
  ensure_compose
  mkdir -p "$RUN_DIR"
  ensure_netns
  if engine_answers; then
    log "dockerd already running (pid $(pid_of "$DOCKERD_PIDFILE")), socket $SOCKET"
    return
  fi
  write_daemon_config
  log "starting dockerd in network namespace $DOCKER_NETNS (log: $DOCKERD_LOG)"
  rm -f "$SOCKET"
  in_netns env PATH="$IPTABLES_BIN:$PATH" setsid dockerd --config-file "$DOCKER_HOME/daemon.json" \
    </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
  local launched=$! deadline=$((SECONDS + START_TIMEOUT_S))
  until engine_answers; do
    if ! pid_alive "$launched"; then
      tail -n 30 "$DOCKERD_LOG" >&2
      die "dockerd exited during start-up; see $DOCKERD_LOG"
    fi
    ((SECONDS < deadline)) || die "dockerd did not answer within ${START_TIMEOUT_S}s; see $DOCKERD_LOG"
    sleep 0.5
  done
  log "dockerd $(DOCKER_HOST="unix://$SOCKET" /usr/bin/docker version --format '{{.Server.Version}}') ready"
}

stop_pid() {
  local pidfile=$1 name=$2 pid
  pid=$(pid_of "$pidfile")
  if pid_alive "$pid"; then
    log "stopping $name (pid $pid)"
    kill "$pid"
    local deadline=$((SECONDS + 30))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.5; done
    pid_alive "$pid" && kill -9 "$pid"
  fi
  rm -f "$pidfile"
}

print_env() {
  cat <<EOF
export DOCKER_HOST=unix://$SOCKET
export DOCKER_CONFIG=$CLIENT_CONFIG
export DOCKER_BUILDKIT=1
export DOCKER_NETNS_PATH=$NETNS_PATH
export PATH=$CLIENT_BIN:\$PATH
EOF
}

case "${1:-up}" in
  up) start; print_env ;;
  env) print_env ;;
  status)
    if engine_answers; then
      echo "dockerd $(DOCKER_HOST="unix://$SOCKET" /usr/bin/docker version --format '{{.Server.Version}}') running (pid $(pid_of "$DOCKERD_PIDFILE")), netns $NETNS_PATH"
    else
      echo "dockerd not running"; exit 1
    fi ;;
  down) stop_pid "$DOCKERD_PIDFILE" dockerd; stop_pid "$SLIRP_PIDFILE" slirp4netns ;;
  help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (up|env|status|down|help)" ;;
esac
