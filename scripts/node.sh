#!/usr/bin/env bash
# Adds a node that runs Pods to the control plane of scripts/kube.sh, as minikube's
# single node does:
#   * containerd + runc      Debian's, with the CRI plugin and CNI bridge networking
#   * kubelet                Node "platform-node", cgroupfs on this machine's cgroups
#   * kube-proxy             iptables mode, Services' ClusterIPs
#   * kube-scheduler
#   * CoreDNS                the cluster DNS (Service kube-dns, 10.96.0.10)
#   * hostpath provisioner   default StorageClass "standard" (k8s.io/minikube-hostpath),
#                            claims become directories under $NODE_HOME/volumes
#
# The node's networking lives in a network namespace of its own (/run/netns/$NODE_NETNS)
# joined to the host by one veth link (host 10.250.0.1, node 10.250.0.2), like the
# other test hosts: its bridge, its pods (10.244.0.0/24) and kube-proxy's iptables
# rules stay inside. On the host side there is only that link and a route to the pod
# network through it (the API server's pod proxy dials pod IPs); both go with the link,
# the machine's other routes and its iptables rules are untouched. The API server
# (loopback only) is forwarded to 10.250.0.1:6443 for the node's components and pods.
#
# No registry is reachable: images are loaded into the node's containerd from the
# Docker engine of scripts/docker.sh (`load`), as `minikube image load` does.
#
# Usage: scripts/node.sh [up|down|env|status|load IMAGE...|help]
#   up (default)  start (or reuse) the control plane and the node; wait until Ready
#   load IMAGE..  copy images from the Docker engine (DOCKER_HOST) into the node
#   status        which components run
#   env           print the export lines (as scripts/kube.sh env, plus NODE_NETNS_PATH)
#   down          stop the node's components and its pods (images and volumes are kept)
#
# Progress goes to stderr with a "[node]" prefix; stdout carries only export lines.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"
LOG_TAG=node LOG_FD=2 DIE_WORD=ERROR

COREDNS_VERSION=v1.15.0
COREDNS_BUILD_DIR="$REPO_ROOT/tools/coredns-build"
NODE_NAME=platform-node
NODE_NETNS="${NODE_NETNS:-platform-node}"
NETNS_PATH="/run/netns/$NODE_NETNS"
HOST_IP=10.250.0.1
NODE_IP=10.250.0.2
DNS_IP=10.250.0.10
CLUSTER_DNS_IP=10.96.0.10
POD_CIDR=10.244.0.0/24
APISERVER_PORT=6443
LINK_HOST=pnode-h
LINK_NODE=pnode-n

# Images, containerd's content and the volumes survive between runs; run-time state
# (sockets, the kubelet's pod directories) does not.
NODE_HOME="$PLATFORM_CACHE/node"
RUN_DIR=/run/platform-node
STATE_DIR="${NODE_STATE_DIR:-/tmp/platform-node}"
KUBE_DATA_DIR="${KUBE_DATA_DIR:-/tmp/platform-kube}"
CONTAINERD_SOCKET="$RUN_DIR/containerd.sock"
START_TIMEOUT_S="${NODE_START_TIMEOUT_S:-120}"

in_netns() { nsenter --net="$NETNS_PATH" "$@"; }
pidfile() { echo "$STATE_DIR/$1.pid"; }
pid_of() { if [[ -r "$(pidfile "$1")" ]]; then cat "$(pidfile "$1")"; fi; }
running() { pid_alive "$(pid_of "$1")"; }
ctr_node() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }
kube() { "$KUBECTL" --kubeconfig "$KUBE_DATA_DIR/admin.kubeconfig" "$@"; }

# launch NAME [in-netns] COMMAND...: detached, output to $STATE_DIR/logs/NAME.log.
launch() {
  local name=$1; shift
  local prefix=()
  if [[ $1 == in-netns ]]; then prefix=(nsenter --net="$NETNS_PATH"); shift; fi
  mkdir -p "$STATE_DIR/logs"
  # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
  setsid "${prefix[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$name")" "$@" \
    </dev/null >>"$STATE_DIR/logs/$name.log" 2>&1 9>&- &
  local _
  for _ in $(seq 1 100); do [[ -s "$(pidfile "$name")" ]] && return; sleep 0.1; done
  die "could not launch $name"
}

# wait_for NAME WHAT CHECK...: poll CHECK; fail early if NAME died.
wait_for() {
  local name=$1 what=$2; shift 2
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      tail -n 30 "$STATE_DIR/logs/$name.log" >&2 || true
      die "$name exited during start-up; see $STATE_DIR/logs/$name.log"
    fi
    ((SECONDS < deadline)) || die "$what within ${START_TIMEOUT_S}s; see $STATE_DIR/logs/$name.log"
    sleep 0.5
  done
}

ensure_installed() {
  [[ $EUID -eq 0 ]] || die "the node needs root (network namespaces, cgroups, mounts)"
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap ]] \
    || missing+=(containernetworking-plugins)
  [[ -x /usr/sbin/iptables-legacy ]] || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v socat >/dev/null || missing+=(socat)
  command -v nsenter >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
  IPTABLES_BIN=$(legacy_iptables_dir)
}

# CoreDNS with the plugins the node uses (tools/coredns-build), once per version and
# source of that wrapper.
ensure_coredns() {
  local hash
  hash=$(cat "$COREDNS_BUILD_DIR"/{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)
  COREDNS="$PLATFORM_CACHE/bin/coredns-$COREDNS_VERSION-$hash"
  grep -Eq "^[[:space:]]*(require )?github.com/coredns/coredns $COREDNS_VERSION( |\$)" "$COREDNS_BUILD_DIR/go.mod" \
    || die "$COREDNS_BUILD_DIR/go.mod does not require CoreDNS $COREDNS_VERSION"
  [[ -x "$COREDNS" ]] && return
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || die "Go is needed to build CoreDNS (install golang-go)"
  log "building CoreDNS $COREDNS_VERSION from the Go module proxy (once)"
  local start=$SECONDS
  mkdir -p "$(dirname "$COREDNS")"
  (cd "$COREDNS_BUILD_DIR" && GOFLAGS="${GOFLAGS:-} -mod=mod" go build -trimpath -ldflags "-s -w" -o "$COREDNS.tmp" .) >&2 \
    || die "building CoreDNS $COREDNS_VERSION failed"
  mv "$COREDNS.tmp" "$COREDNS"
  log "CoreDNS $COREDNS_VERSION built in $((SECONDS - start))s"
}

# The namespace, its link to the host, the addresses the node serves on.
ensure_netns() {
  [[ -e "$NETNS_PATH" ]] || { log "creating network namespace $NODE_NETNS"; ip netns add "$NODE_NETNS"; }
  if ! ip link show "$LINK_HOST" >/dev/null 2>&1; then
    ip link add "$LINK_HOST" type veth peer name "$LINK_NODE" netns "$NODE_NETNS"
    ip addr add "$HOST_IP/30" dev "$LINK_HOST"
    ip link set "$LINK_HOST" up
    in_netns ip addr add "$NODE_IP/30" dev "$LINK_NODE"
    in_netns ip link set "$LINK_NODE" up
  fi
  # The API server proxies to pods (`kubectl port-forward` goes through the kubelet,
  # but the pod proxy that platformctl uses dials the pod's IP): the pod network is
  # routed through the link, and the route goes with it.
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$LINK_HOST"
  in_netns ip link set lo up
  # CoreDNS listens on an address of its own, on the node's loopback device.
  in_netns ip addr replace "$DNS_IP/32" dev lo
  in_netns ip route replace default via "$HOST_IP"
  # Pods reach each other and Services through the node: forwarding on, bridged
  # traffic through iptables (kube-proxy's rules), inside the namespace only.
  in_netns sysctl -qw net.ipv4.ip_forward=1
  in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# The API server listens on loopback; the node's side of the link reaches it here.
start_apiserver_forward() {
  running apiserver-forward && return
  log "forwarding $HOST_IP:$APISERVER_PORT to the API server"
  launch apiserver-forward socat "TCP-LISTEN:$APISERVER_PORT,bind=$HOST_IP,reuseaddr,fork" \
    "TCP:127.0.0.1:$APISERVER_PORT"
  wait_for apiserver-forward "the API server forward did not open" \
    bash -c "exec 3<>/dev/tcp/$HOST_IP/$APISERVER_PORT"
}

write_containerd_config() {
  mkdir -p "$STATE_DIR/cni/net.d" "$NODE_HOME/containerd" "$RUN_DIR"
  cat >"$STATE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_HOME/containerd"
state = "$RUN_DIR/containerd"
[grpc]
  address = "$CONTAINERD_SOCKET"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # This machine withholds CAP_SYS_RESOURCE: a negative oom_score_adj cannot be set.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
EOF
  cat >"$STATE_DIR/cni/net.d/10-platform.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "platform",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR" }]],
                "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": "$STATE_DIR/cni/ipam" }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

start_containerd() {
  if running containerd && ctr --address "$CONTAINERD_SOCKET" version >/dev/null 2>&1; then return; fi
  write_containerd_config
  log "starting containerd (log: $STATE_DIR/logs/containerd.log)"
  rm -f "$CONTAINERD_SOCKET"
  launch containerd in-netns env PATH="$IPTABLES_BIN:$PATH" containerd --config "$STATE_DIR/containerd.toml"
  wait_for containerd "containerd did not answer" ctr --address "$CONTAINERD_SOCKET" version
}

start_scheduler() {
  running kube-scheduler && return
  log "starting kube-scheduler"
  launch kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig "$KUBE_DATA_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$KUBE_DATA_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$KUBE_DATA_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false
  wait_for kube-scheduler "kube-scheduler was not healthy" curl -fsSk https://127.0.0.1:10259/healthz
}

write_kubelet_config() {
  local pki="$KUBE_DATA_DIR/pki"
  echo "nameserver $CLUSTER_DNS_IP" >"$STATE_DIR/resolv.conf"
  cat >"$STATE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1, which the kubelet refuses since 1.35 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: $STATE_DIR/resolv.conf
podLogsDir: $STATE_DIR/pod-logs
# No registry: an image garbage-collected could not be pulled back.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
}

start_kubelet() {
  running kubelet && return
  write_kubelet_config
  log "starting kubelet (log: $STATE_DIR/logs/kubelet.log)"
  mkdir -p "$STATE_DIR/kubelet" "$STATE_DIR/pod-logs"
  launch kubelet in-netns env PATH="$IPTABLES_BIN:$PATH" "$KUBE_BIN/kubelet" \
    --config "$STATE_DIR/kubelet.yaml" --kubeconfig "$KUBE_DATA_DIR/kubelet.kubeconfig" \
    --root-dir "$STATE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  wait_for kubelet "the kubelet was not healthy" in_netns curl -fsS http://127.0.0.1:10248/healthz
}

start_kube_proxy() {
  running kube-proxy && return
  cat >"$STATE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $KUBE_DATA_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# Every Service connection is masqueraded, so a pod that reaches itself or a
# neighbour through a ClusterIP gets its replies back through the node.
iptables: {masqueradeAll: true}
# The conntrack table and timeouts are the machine's (global sysctls): left alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  log "starting kube-proxy"
  launch kube-proxy in-netns env PATH="$IPTABLES_BIN:$PATH" "$KUBE_BIN/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml"
  wait_for kube-proxy "kube-proxy was not healthy" in_netns curl -fsS http://127.0.0.1:10256/healthz
}

start_coredns() {
  running coredns && return
  cat >"$STATE_DIR/Corefile" <<EOF
.:53 {
    bind $DNS_IP
    errors
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBE_DATA_DIR/coredns.kubeconfig platform-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loadbalance
}
EOF
  log "starting CoreDNS on $DNS_IP:53"
  launch coredns in-netns "$COREDNS" -conf "$STATE_DIR/Corefile"
  wait_for coredns "CoreDNS was not ready" in_netns curl -fsS http://127.0.0.1:8181/ready
}

start_provisioner() {
  running hostpath-provisioner && return
  mkdir -p "$NODE_HOME/volumes"
  log "starting the hostpath provisioner (volumes under $NODE_HOME/volumes)"
  launch hostpath-provisioner "$KUBE_BIN/hostpath-provisioner" \
    --kubeconfig "$KUBE_DATA_DIR/hostpath-provisioner.kubeconfig" --root "$NODE_HOME/volumes"
}

# The cluster objects a minikube node comes with: RBAC of the two extra components,
# the default StorageClass, the DNS Service, and the endpoints of the two Services
# whose servers run outside pods (the API server, CoreDNS).
apply_cluster_objects() {
  sed -e "s/@HOST_IP@/$HOST_IP/g" -e "s/@DNS_IP@/$DNS_IP/g" -e "s/@CLUSTER_DNS_IP@/$CLUSTER_DNS_IP/g" \
    -e "s/@APISERVER_PORT@/$APISERVER_PORT/g" "$REPO_ROOT/scripts/lib/node-objects.yaml" \
    | kube apply -f - >/dev/null || die "applying scripts/lib/node-objects.yaml failed"
}

node_ready() {
  [[ "$(kube get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

cmd_up() {
  ensure_installed
  eval "$("$REPO_ROOT/scripts/kube.sh" up)"
  KUBE_BIN=$(dirname "$KUBECTL")
  ensure_coredns
  mkdir -p "$STATE_DIR" "$RUN_DIR"
  exec 9>"$PLATFORM_CACHE/node.lock"
  flock -w 600 9 || die "another scripts/node.sh has held $PLATFORM_CACHE/node.lock for 10 minutes"
  local t0=$SECONDS
  ensure_netns
  start_apiserver_forward
  apply_cluster_objects
  start_provisioner
  start_scheduler
  start_containerd
  start_kubelet
  start_kube_proxy
  start_coredns
  wait_for kubelet "node $NODE_NAME was not Ready" node_ready
  log "node $NODE_NAME Ready in $((SECONDS - t0))s ($(ctr --address "$CONTAINERD_SOCKET" version | awk '/Version/ {print $2; exit}'))"
  print_env
}

# The name containerd gives an image that Docker calls NAME (docker.io's defaults).
containerd_ref() {
  local first=${1%%/*}
  if [[ $1 != */* ]]; then echo "docker.io/library/$1"
  elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then echo "$1"
  else echo "docker.io/$1"; fi
}

# docker save | ctr import, skipped when the node already has that image (same id).
cmd_load() {
  [[ -n "${DOCKER_HOST:-}" ]] || die "DOCKER_HOST is not set: eval \"\$(scripts/docker.sh env)\" first"
  running containerd || die "the node is not running: scripts/node.sh up first"
  local image id ref marker
  mkdir -p "$NODE_HOME/loaded"
  for image in "$@"; do
    id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null) || die "image $image is not in the Docker engine"
    ref=$(containerd_ref "$image")
    marker="$NODE_HOME/loaded/${ref//\//_}"
    if [[ "$(ctr_node images ls -q "name==$ref" 2>/dev/null)" == "$ref" && "$(cat "$marker" 2>/dev/null)" == "$id" ]]; then
      continue
    fi
    log "loading $image into the node"
    docker save "$image" | ctr_node images import - >/dev/null || die "importing $image into the node's containerd failed"
    echo "$id" >"$marker"
  done
}

cmd_down() {
  # The pods first: containerd's shims outlive containerd.
  if running containerd; then
    local task
    for task in $(ctr_node tasks ls -q 2>/dev/null); do ctr_node tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
  fi
  local name pid
  for name in kubelet kube-proxy coredns kube-scheduler hostpath-provisioner containerd apiserver-forward; do
    pid=$(pid_of "$name")
    if pid_alive "$pid"; then
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 20))
      while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
      pid_alive "$pid" && kill -9 "$pid"
    fi
    rm -f "$(pidfile "$name")"
  done
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCKET" 2>/dev/null || true
  ip link del "$LINK_HOST" 2>/dev/null || true
  ip netns del "$NODE_NETNS" 2>/dev/null || true
}

print_env() {
  "$REPO_ROOT/scripts/kube.sh" env
  echo "export NODE_NETNS_PATH=$NETNS_PATH"
  echo "export NODE_CONTAINERD_SOCKET=$CONTAINERD_SOCKET"
}

cmd_status() {
  local name rc=0
  for name in containerd kubelet kube-proxy kube-scheduler coredns hostpath-provisioner apiserver-forward; do
    if running "$name"; then printf '%-22s running (pid %s)\n' "$name" "$(pid_of "$name")"
    else printf '%-22s not running\n' "$name"; rc=1; fi
  done
  return "$rc"
}

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

case "${1:-up}" in
  up) cmd_up ;;
  load) shift; cmd_load "$@" ;;
  down) cmd_down ;;
  env) print_env ;;
  status) cmd_status ;;
  help|-h|--help) usage ;;
  *) usage >&2; die "unknown subcommand: $1" ;;
esac
