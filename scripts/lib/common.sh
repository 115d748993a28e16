# shellcheck shell=bash
# Helpers every platform script shares; sourced, never run. Each script sets, after
# sourcing (before its first message):
#   LOG_TAG   the tag of its lines: "[$LOG_TAG] ..."
#   LOG_FD    where progress lines go: 1 (the default), or 2 for scripts whose stdout is
#             data (`eval "$(scripts/deps.sh up)"`, a binary's path, a report)
#   DIE_WORD  the word before a fatal message: FAILED (the default) or ERROR

# Where the scripts install tools and packages once and reuse them.
PLATFORM_CACHE="${PLATFORM_CACHE:-${HOME:-/root}/.cache/platform}"

LOG_TAG=${LOG_TAG:-platform}
log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&"${LOG_FD:-1}"; }
die() { printf '[%s] %s: %s\n' "$LOG_TAG" "${DIE_WORD:-FAILED}" "$*" >&2; exit 1; }

# A TCP port free on 127.0.0.1 right now (the kernel's pick), for a server started next.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# apt_install PACKAGE...: Debian packages, as root or through sudo. `apt-get update` runs
# once per script; the install's output goes to $APT_LOG, whose tail shows on failure.
APT_LOG="$PLATFORM_CACHE/apt-install.log"
apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to apt-get install $*"
    sudo="sudo"
  fi
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $sudo apt-get update -qq >&2 || die "apt-get update failed; cannot install: $*"
    apt_updated=1
  fi
  log "apt-get install $* (output in $APT_LOG)"
  mkdir -p "$(dirname "$APT_LOG")"
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "$@" >"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2
    die "apt-get install failed for: $*"
  fi
}

# True if pid exists and is not a zombie. PID 1 on these machines does not reap
# orphans, so a killed server lingers as a zombie; that counts as dead.
pid_alive() {
  local pid="$1" state
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != "Z" && "$state" != "X" ]]
}

# A directory holding iptables and its tools as Debian's legacy binaries, for a server
# started with it first on PATH (dockerd, the node's kubelet and kube-proxy, each in a
# network namespace of its own). Prints the directory.
legacy_iptables_dir() {
  local dir="$PLATFORM_CACHE/iptables-legacy" t
  mkdir -p "$dir"
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sfn "/usr/sbin/${t%%-*}-legacy${t#"${t%%-*}"}" "$dir/$t"
  done
  echo "$dir"
}
