#!/usr/bin/env bash
# Builds, starts and reuses a local Kubernetes control plane on loopback:
#   * etcd                     http://127.0.0.1:2379 (peer 127.0.0.1:2380)
#   * kube-apiserver           https://127.0.0.1:6443
#   * kube-controller-manager  https://127.0.0.1:10257 (health only)
#   * kubectl                  for the scripts and for you
#
# All four are built once from tools/kube-build (a Go module that pins
# k8s.io/kubernetes and takes etcd from the same module graph) and cached under
# $PLATFORM_CACHE/kube-<version>/bin, with the node's binaries (kubelet, kube-proxy,
# kube-scheduler, the hostpath provisioner). This control plane alone runs no Pod:
# Deployments, StatefulSets and Jobs get their Pods (the controller-manager creates
# them, admission checks them), and scripts/node.sh adds the node that runs them.
# The certificates for the node's components are made here, with the cluster's CA.
#
# Like scripts/deps.sh, the servers are detached (setsid) and stopped by pid.
#
# Usage: scripts/kube.sh [up|down|env|status|build|help]
#   up (default)  build if needed, start (or reuse) everything, print exports
#   env           print only the `export` lines:  eval "$(scripts/kube.sh env)"
#   status        which components run, and the server's version
#   down          stop the three servers (by pid); etcd data is kept
#   build         only build (or reuse) the binaries
#
# Progress goes to stderr with a "[kube]" prefix; stdout carries only the
# export lines, so `eval "$(scripts/kube.sh up)"` works.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"

# Inside the chart's kubeVersion range (Chart.yaml). tools/kube-build/go.mod
# requires the same release; bump both together.
KUBE_VERSION=v1.37.2
KUBE_BUILD_DIR="$REPO_ROOT/tools/kube-build"
KUBE_HOME="$PLATFORM_CACHE/kube-$KUBE_VERSION"
KUBE_BIN="$KUBE_HOME/bin"
KUBECTL="$KUBE_BIN/kubectl"

# Run-time state (certificates, etcd data, logs, pids, kubeconfigs).
KUBE_DATA_DIR="${KUBE_DATA_DIR:-/tmp/platform-kube}"
# Bumped when the certificates or the servers' flags change: a data dir made with
# another version is wiped (a fresh cluster) and its servers restarted.
CONFIG_VERSION=2
PKI="$KUBE_DATA_DIR/pki"
ADMIN_KUBECONFIG="$KUBE_DATA_DIR/admin.kubeconfig"
CM_KUBECONFIG="$KUBE_DATA_DIR/controller-manager.kubeconfig"

HOST=127.0.0.1
APISERVER_PORT=6443
ETCD_PORT=2379
ETCD_PEER_PORT=2380
CM_PORT=10257
SERVICE_CIDR=10.96.0.0/16
SERVICE_FIRST_IP=10.96.0.1
# The node of scripts/node.sh: its address on its link to the host, and the host's
# end of that link, where the API server is forwarded for the node's components and pods.
NODE_NAME=platform-node
NODE_IP=10.250.0.2
NODE_HOST_IP=10.250.0.1

START_TIMEOUT_S="${KUBE_START_TIMEOUT_S:-120}"
STOP_TIMEOUT_S="${KUBE_STOP_TIMEOUT_S:-30}"

LOG_TAG=kube LOG_FD=2 DIE_WORD=ERROR

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pidfile() { echo "$KUBE_DATA_DIR/$1.pid"; }
pid_of() {
  local f
  f="$(pidfile "$1")"
  if [[ -r "$f" ]]; then cat "$f"; fi
}
running() { pid_alive "$(pid_of "$1")"; }

take_lock() {
  mkdir -p "$PLATFORM_CACHE"
  exec 9>"$PLATFORM_CACHE/kube.lock"
  flock -w 900 9 || die "another scripts/kube.sh has held $PLATFORM_CACHE/kube.lock for 15 minutes"
}

# Start "$@" detached (own session, no stdin, lock fd closed), output to
# $KUBE_DATA_DIR/logs/NAME.log, pid in NAME.pid (bash -c exec keeps the pid).
launch_detached() {
  local name="$1"; shift
  local pf; pf="$(pidfile "$name")"
  mkdir -p "$KUBE_DATA_DIR/logs"
  rm -f "$pf"
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pf" "$@" \
    </dev/null >>"$KUBE_DATA_DIR/logs/$name.log" 2>&1 9>&- &
  local _
  for _ in $(seq 1 100); do [[ -s "$pf" ]] && return; sleep 0.1; done
  die "could not launch $name"
}

# wait_until NAME CHECK...: poll CHECK until it succeeds; fail early if NAME died.
wait_until() {
  local name="$1"; shift
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      tail -n 30 "$KUBE_DATA_DIR/logs/$name.log" >&2 || true
      die "$name exited during start-up; see $KUBE_DATA_DIR/logs/$name.log"
    fi
    ((SECONDS < deadline)) || die "$name not ready within ${START_TIMEOUT_S}s; see $KUBE_DATA_DIR/logs/$name.log"
    sleep 0.3
  done
}

# ----------------------------------------------------------------------------
# Build (once per version and source of tools/kube-build)
# ----------------------------------------------------------------------------
source_hash() {
  cat "$KUBE_BUILD_DIR/go.mod" "$KUBE_BUILD_DIR/go.sum" "$KUBE_BUILD_DIR/tools.go" \
    "$KUBE_BUILD_DIR/etcd/main.go" "$KUBE_BUILD_DIR/hostpath-provisioner/main.go" \
    <(echo "$KUBE_VERSION") | sha256sum | cut -c1-16
}

# apt_get PACKAGE...: install Debian packages (root only), for a fresh machine.
apt_get() {
  [[ $EUID -eq 0 ]] || die "$* missing: install it (apt-get install $*)"
  log "apt-get install $*"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}

ensure_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  # Debian's Go is older than tools/kube-build/go.mod asks for; with
  # GOTOOLCHAIN=auto it fetches that toolchain through the Go module proxy.
  command -v go >/dev/null || apt_get golang-go ca-certificates
  command -v go >/dev/null || die "Go is not installed: the control plane builds from source with Go >= 1.26 (tools/kube-build/go.mod)"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
}

binaries_built() {
  local b
  for b in etcd kube-apiserver kube-controller-manager kubectl kubelet kube-proxy kube-scheduler hostpath-provisioner; do
    [[ -x "$KUBE_BIN/$b" ]] || return 1
  done
  [[ "$(cat "$KUBE_HOME/source-hash" 2>/dev/null)" == "$(source_hash)" ]]
}

build() {
  if binaries_built; then
    return
  fi
  ensure_go
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local x="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x="$x -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    x="$x -X $p.gitTreeState=clean -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  local tmp="$KUBE_HOME.tmp-$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  log "building etcd, kube-apiserver, kube-controller-manager, kubectl and the node's binaries $KUBE_VERSION"
  log "(once per version: about 12 minutes on 2 cores, plus ~150 MB of module downloads)"
  local t0=$SECONDS
  (cd "$KUBE_BUILD_DIR" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -trimpath -ldflags "-s -w $x" -o "$tmp/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kube-scheduler ./etcd ./hostpath-provisioner) >&2 || { rm -rf "$tmp"; die "building the control plane failed"; }
  source_hash >"$tmp/source-hash"
  rm -rf "$KUBE_HOME"
  mv "$tmp" "$KUBE_HOME"
  log "built in $((SECONDS - t0))s into $KUBE_BIN"
}

# ----------------------------------------------------------------------------
# Certificates and kubeconfigs (openssl; made once per data dir)
# ----------------------------------------------------------------------------
ensure_openssl() {
  command -v openssl >/dev/null || apt_get openssl
}

# new_ca NAME CN
new_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# new_cert NAME CA SUBJECT EXT_USAGE [SAN]
new_cert() {
  local name="$1" ca="$2" subj="$3" usage="$4" san="${5:-}"
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -z "$san" ]] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -newkey rsa:2048 -nodes -subj "$subj" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
    -CAcreateserial -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

# write_kubeconfig FILE USER CERT_NAME [SERVER_IP]: SERVER_IP is the node's way to
# the API server (NODE_HOST_IP) for the components that run in its namespace.
write_kubeconfig() {
  local file="$1" user="$2" cert="$3" server="${4:-$HOST}"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: platform-local
    cluster:
      server: https://$server:$APISERVER_PORT
      certificate-authority: $PKI/ca.crt
users:
  - name: $user
    user:
      client-certificate: $PKI/$cert.crt
      client-key: $PKI/$cert.key
contexts:
  - name: platform-local
    context:
      cluster: platform-local
      user: $user
current-context: platform-local
EOF
  chmod 600 "$file"
}

ensure_pki() {
  if [[ -s "$PKI/done" ]]; then
    return
  fi
  ensure_openssl
  log "creating certificates in $PKI"
  rm -rf "$PKI"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  new_ca ca platform-local-kubernetes-ca
  new_ca front-proxy-ca platform-local-front-proxy-ca
  new_cert apiserver ca /CN=kube-apiserver serverAuth \
    "IP:$HOST,IP:$SERVICE_FIRST_IP,IP:$NODE_HOST_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  new_cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
  new_cert controller-manager ca /CN=system:kube-controller-manager clientAuth
  new_cert front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
  # The API server's client certificate towards the kubelet (logs, exec, port-forward).
  new_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  # The node's components, with the identities the default RBAC policy and the Node
  # authorizer know; CoreDNS gets a ClusterRole of its own from scripts/node.sh.
  new_cert scheduler ca /CN=system:kube-scheduler clientAuth
  new_cert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  new_cert kubelet-serving ca "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  new_cert kube-proxy ca /CN=system:kube-proxy clientAuth
  new_cert coredns ca /CN=platform:coredns clientAuth
  new_cert hostpath-provisioner ca /CN=platform:hostpath-provisioner clientAuth
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  write_kubeconfig "$ADMIN_KUBECONFIG" kubernetes-admin admin
  write_kubeconfig "$CM_KUBECONFIG" system:kube-controller-manager controller-manager
  write_kubeconfig "$KUBE_DATA_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
  write_kubeconfig "$KUBE_DATA_DIR/hostpath-provisioner.kubeconfig" platform:hostpath-provisioner hostpath-provisioner
  write_kubeconfig "$KUBE_DATA_DIR/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet "$NODE_HOST_IP"
  write_kubeconfig "$KUBE_DATA_DIR/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "$NODE_HOST_IP"
  write_kubeconfig "$KUBE_DATA_DIR/coredns.kubeconfig" platform:coredns coredns "$NODE_HOST_IP"
  date -u +%FT%TZ >"$PKI/done"
}

# ----------------------------------------------------------------------------
# The servers
# ----------------------------------------------------------------------------
kubectl_admin() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

etcd_healthy() { curl -fsS "http://$HOST:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() { kubectl_admin get --raw /readyz; }
cm_healthy() { curl -fsSk "https://$HOST:$CM_PORT/healthz" | grep -qx ok; }

start_etcd() {
  if running etcd && etcd_healthy; then
    log "etcd already running (pid $(pid_of etcd))"
    return
  fi
  port_open "$HOST" "$ETCD_PORT" && die "port $ETCD_PORT is taken by another process; stop it first"
  log "starting etcd (log: $KUBE_DATA_DIR/logs/etcd.log)"
  launch_detached etcd "$KUBE_BIN/etcd" \
    --name platform-local --data-dir "$KUBE_DATA_DIR/etcd" \
    --listen-client-urls "http://$HOST:$ETCD_PORT" --advertise-client-urls "http://$HOST:$ETCD_PORT" \
    --listen-peer-urls "http://$HOST:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$HOST:$ETCD_PEER_PORT" \
    --initial-cluster "platform-local=http://$HOST:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --log-level warn \
    --quota-backend-bytes $((2 * 1024 * 1024 * 1024))
  wait_until etcd etcd_healthy
}

start_apiserver() {
  if running kube-apiserver && apiserver_ready >/dev/null 2>&1; then
    log "kube-apiserver already running (pid $(pid_of kube-apiserver))"
    return
  fi
  port_open "$HOST" "$APISERVER_PORT" && die "port $APISERVER_PORT is taken by another process; stop it first"
  log "starting kube-apiserver (log: $KUBE_DATA_DIR/logs/kube-apiserver.log)"
  # PodSecurity admission is in the default plugin set. --endpoint-reconciler-type=none:
  # the kubernetes Service's endpoint would be a loopback address, which
  # Endpoints validation refuses. The proxy-client/requestheader flags enable
  # the aggregation layer (APIService objects such as KEDA's metrics server).
  launch_detached kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address "$HOST" --advertise-address "$HOST" --secure-port "$APISERVER_PORT" \
    --etcd-servers "http://$HOST:$ETCD_PORT" \
    --cert-dir "$KUBE_DATA_DIR/apiserver-certs" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --anonymous-auth=false \
    --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true
  wait_until kube-apiserver apiserver_ready
}

start_controller_manager() {
  if running kube-controller-manager && cm_healthy; then
    log "kube-controller-manager already running (pid $(pid_of kube-controller-manager))"
    return
  fi
  port_open "$HOST" "$CM_PORT" && die "port $CM_PORT is taken by another process; stop it first"
  log "starting kube-controller-manager (log: $KUBE_DATA_DIR/logs/kube-controller-manager.log)"
  launch_detached kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$CM_KUBECONFIG" \
    --authentication-kubeconfig "$CM_KUBECONFIG" --authorization-kubeconfig "$CM_KUBECONFIG" \
    --bind-address "$HOST" --secure-port "$CM_PORT" \
    --cert-dir "$KUBE_DATA_DIR/controller-manager-certs" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --leader-elect=false
  wait_until kube-controller-manager cm_healthy
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if ! pid_alive "$pid"; then
    log "$name is not running"
    rm -f "$(pidfile "$name")"
    return
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$(pidfile "$name")"
}

print_env() {
  echo "export KUBECONFIG=$ADMIN_KUBECONFIG"
  echo "export KUBECTL=$KUBECTL"
  echo "export PATH=$KUBE_BIN:\$PATH"
}

cmd_status() {
  local name state rc=0
  for name in etcd kube-apiserver kube-controller-manager; do
    if running "$name"; then state="running (pid $(pid_of "$name"))"; else state="not running"; rc=1; fi
    printf '%-24s %s\n' "$name" "$state"
  done
  if [[ -x "$KUBECTL" ]] && ((rc == 0)); then
    printf '%-24s %s\n' "server version" "$(kubectl_admin version -o json 2>/dev/null | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | tail -n1)"
    printf '%-24s %s\n' "kubeconfig" "$ADMIN_KUBECONFIG"
  fi
  return "$rc"
}

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

main() {
  local cmd="${1:-up}"
  case "$cmd" in
    env) print_env; return ;;
    status) cmd_status; return ;;
    help|-h|--help) usage; return ;;
  esac
  take_lock
  local t0=$SECONDS
  case "$cmd" in
    build) build ;;
    up)
      build
      command -v curl >/dev/null || apt_get curl
      if [[ -d "$KUBE_DATA_DIR" && "$(cat "$KUBE_DATA_DIR/version" 2>/dev/null)" != "$CONFIG_VERSION" ]]; then
        log "$KUBE_DATA_DIR was made by an older scripts/kube.sh: starting a fresh cluster"
        stop_one kube-controller-manager
        stop_one kube-apiserver
        stop_one etcd
        rm -rf "$KUBE_DATA_DIR"
      fi
      mkdir -p "$KUBE_DATA_DIR"
      echo "$CONFIG_VERSION" >"$KUBE_DATA_DIR/version"
      ensure_pki
      start_etcd
      start_apiserver
      start_controller_manager
      log "control plane $KUBE_VERSION up in $((SECONDS - t0))s; KUBECONFIG=$ADMIN_KUBECONFIG"
      print_env
      ;;
    down)
      stop_one kube-controller-manager
      stop_one kube-apiserver
      stop_one etcd
      ;;
    *) usage >&2; die "unknown subcommand: $cmd" ;;
  esac
}

main "$@"
