#!/usr/bin/env bash
# Traefik's Kubernetes providers load the chart's routing objects from a real API server.
#
# On the local control plane of scripts/kube.sh (etcd, kube-apiserver,
# kube-controller-manager; no kubelet), with Traefik's own CRDs and its own RBAC for the
# providers (both from the Traefik Go module at the version docker-compose.yml pins):
#
#   1. renders the chart (default values) and applies what Traefik reads: the strip-prefix
#      Middleware (traefik.io), the Ingress, and the Services it routes to, each given an
#      EndpointSlice by hand (no kubelet runs pods), plus the `traefik` IngressClass that
#      Traefik's Helm chart would create;
#   2. runs the Traefik binary of scripts/gateway.sh with the kubernetescrd and
#      kubernetesingress providers pointed at the API server, authenticated as the
#      ServiceAccount bound to Traefik's ClusterRole;
#   3. checks through Traefik's API that the Ingress's routers and the Middleware are
#      loaded and enabled with no error, and that Traefik logged no error.
#
# Usage: scripts/check-gateway-kube.sh. Ends with "N passed, N failed".
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"
cd "$REPO_ROOT"
LOG_TAG=gateway-kube

NS=platform-gateway-test
RELEASE=platform
TRAEFIK_VERSION="$(sed -n 's/^ *image: traefik:\(v[0-9.]*\)$/\1/p' docker-compose.yml | head -n1)"
[ -n "$TRAEFIK_VERSION" ] || die "cannot read Traefik's version from docker-compose.yml"
WORK=$(mktemp -d)
TRAEFIK_PID=""
cleanup() {
  if [ -n "$TRAEFIK_PID" ]; then kill "$TRAEFIK_PID" 2>/dev/null || true; wait "$TRAEFIK_PID" 2>/dev/null || true; fi
  [ -z "${KUBECONFIG:-}" ] || kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  if [ "${KEEP_WORK:-}" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TRAEFIK=$(scripts/gateway.sh build) || die "cannot build Traefik (scripts/gateway.sh build)"
eval "$(scripts/kube.sh up)" || die "the local control plane did not start (scripts/kube.sh up)"
ensure_helm
ensure_go
command -v python3 >/dev/null || ensure_python
module=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || die "go mod download traefik failed"
reference="$module/docs/content/reference/dynamic-configuration"
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca="$WORK/ca.crt"
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$ca" \
  || die "cannot read the API server's CA from the kubeconfig"

log "Traefik $TRAEFIK_VERSION CRDs and RBAC, namespace $NS"
kubectl apply --server-side --force-conflicts -f "$reference/kubernetes-crd-definition-v1.yml" >/dev/null \
  || die "the API server refused Traefik's CRDs"
kubectl wait --for=condition=Established --timeout=60s crd/middlewares.traefik.io crd/ingressroutes.traefik.io >/dev/null
kubectl apply --server-side --force-conflicts -f "$reference/kubernetes-crd-rbac.yml" >/dev/null \
  || die "the API server refused Traefik's RBAC"
kubectl delete namespace "$NS" --wait=true --timeout=60s >/dev/null 2>&1 || true
kubectl create namespace "$NS" >/dev/null
kubectl -n default create serviceaccount traefik-ingress-controller --dry-run=client -o yaml | kubectl apply -f - >/dev/null
token=$(kubectl -n default create token traefik-ingress-controller --duration=1h) || die "cannot create a token"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: traefik
spec:
  controller: traefik.io/ingress-controller
EOF

# The chart's Middleware, Ingress and the Services behind it; an EndpointSlice per Service.
helm template "$RELEASE" charts/platform -n "$NS" >"$WORK/render.yaml" || die "helm template failed"
python3 - "$WORK/render.yaml" "$WORK/objects.yaml" <<'PY' || die "the render has no Middleware and Ingress"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ingress = [d for d in docs if d["kind"] == "Ingress"]
middlewares = [d for d in docs if d["kind"] == "Middleware"]
assert ingress and middlewares, "no Ingress or Middleware"
wanted = {p["backend"]["service"]["name"] for i in ingress for r in i["spec"]["rules"] for p in r["http"]["paths"]}
services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] in wanted]
assert len(services) == len(wanted), f"services {wanted} not all rendered"
out = middlewares + ingress + services
for i, svc in enumerate(services):
    ports = [{"name": p["name"], "port": p.get("targetPort") if isinstance(p.get("targetPort"), int) else p["port"],
              "protocol": "TCP"} for p in svc["spec"]["ports"]]
    out.append({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": svc["metadata"]["name"] + "-test", "namespace": svc["metadata"]["namespace"],
                     "labels": {"kubernetes.io/service-name": svc["metadata"]["name"],
                                "endpointslice.kubernetes.io/managed-by": "check-gateway-kube"}},
        "addressType": "IPv4", "ports": ports,
        "endpoints": [{"addresses": [f"10.200.0.{10 + i}"], "conditions": {"ready": True}}],
    })
    print(f"{svc['kind']}/{svc['metadata']['name']}", file=sys.stderr)
yaml.safe_dump_all(out, open(sys.argv[2], "w"))
for d in middlewares + ingress:
    print(f"{d['kind']}/{d['metadata']['name']}", file=sys.stderr)
PY
kubectl apply -n "$NS" -f "$WORK/objects.yaml" >/dev/null || die "the API server refused the chart's objects"

port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
web="" api=""
for ((p = 18090; p <= 18099; p++)); do
  port_free "$p" || continue
  if [ -z "$web" ]; then web=$p; else api=$p; break; fi
done
[ -n "$api" ] || die "no two free ports in 127.0.0.1:18090-18099"
provider_flags=()
for provider in kubernetescrd kubernetesingress; do
  provider_flags+=("--providers.$provider.endpoint=$server" "--providers.$provider.token=$token"
    "--providers.$provider.certAuthFilePath=$ca" "--providers.$provider.namespaces=$NS")
done
"$TRAEFIK" --entrypoints.web.address="127.0.0.1:$web" --entrypoints.traefik.address="127.0.0.1:$api" \
  --api.insecure=true --ping=true --log.level=INFO "${provider_flags[@]}" >"$WORK/traefik.log" 2>&1 &
TRAEFIK_PID=$!

passed=0 failed=0
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; shift; [ $# -eq 0 ] || printf '        %s\n' "$@"; }

# Routers of the Ingress (one per path) and the Middleware, from Traefik's API.
state() {
  python3 - "http://127.0.0.1:$api" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
def get(path):
    with urllib.request.urlopen(base + path, timeout=3) as r:
        return json.load(r)
routers = [r for r in get("/api/http/routers") if r.get("provider") == "kubernetes"]
middlewares = [m for m in get("/api/http/middlewares") if m.get("provider") == "kubernetescrd"]
services = [s for s in get("/api/http/services") if s.get("provider") == "kubernetes"]
for r in routers:
    print("router", r["name"], r.get("status"), r.get("rule"), ",".join(r.get("middlewares", [])), "|".join(r.get("error", [])))
for m in middlewares:
    print("middleware", m["name"], m.get("status"), m.get("usedBy", []),
          "strips=" + ",".join((m.get("stripPrefix") or {}).get("prefixes", [])), "|".join(m.get("error", [])))
for s in services:
    print("service", s["name"], s.get("status"), "|".join(s.get("error", [])))
PY
}
# One router per path of the Ingress: the three services' prefixes.
PATHS=(/api/users /api/notifications /api/predictions)
deadline=$((SECONDS + 60))
while :; do
  out=$(state 2>/dev/null || true)
  routers=$(grep -c '^router .* enabled ' <<<"$out" || true)
  if [ "$routers" -ge "${#PATHS[@]}" ] && grep -q '^middleware .* enabled ' <<<"$out"; then break; fi
  kill -0 "$TRAEFIK_PID" 2>/dev/null || { tail -20 "$WORK/traefik.log" >&2; die "Traefik exited"; }
  [ $SECONDS -lt $deadline ] || break
  sleep 0.5
done
printf '%s\n' "$out" | sed 's/^/    /'
missing_paths=""
for path in "${PATHS[@]}"; do
  grep -q "^router .* enabled .*PathPrefix(\`$path\`)" <<<"$out" || missing_paths="$missing_paths $path"
done
if [ "$(grep -c '^router .* enabled ' <<<"$out" || true)" -eq "${#PATHS[@]}" ] && [ -z "$missing_paths" ] \
  && ! grep -q '^router' <<<"$(grep -v ' enabled ' <<<"$out")"; then
  ok "the chart's Ingress: ${#PATHS[@]} routers (${PATHS[*]}), enabled"
else
  fail "the chart's Ingress: ${#PATHS[@]} routers (${PATHS[*]}), enabled" "missing:${missing_paths:- none}" "$out"
fi
if grep -q "^middleware $NS-$RELEASE-strip-prefix@kubernetescrd enabled " <<<"$out" \
  && [ "$(grep '^router' <<<"$out" | grep -c "$NS-$RELEASE-strip-prefix@kubernetescrd")" -eq "${#PATHS[@]}" ]; then
  ok "the chart's strip-prefix Middleware: loaded, enabled, used by every router"
else
  fail "the chart's strip-prefix Middleware: loaded, enabled, used by every router" "$out"
fi
strips=$(sed -n "s/^middleware $NS-$RELEASE-strip-prefix@kubernetescrd .* strips=\([^ ]*\).*/\1/p" <<<"$out")
if [ "$strips" = "$(IFS=,; echo "${PATHS[*]}")" ]; then
  ok "the strip-prefix Middleware strips ${PATHS[*]}"
else
  fail "the strip-prefix Middleware strips ${PATHS[*]}" "strips: $strips"
fi
if [ "$(grep -c '^service .* enabled' <<<"$out" || true)" -eq "${#PATHS[@]}" ]; then
  ok "the Services behind the Ingress: enabled, with their endpoints"
else
  fail "the Services behind the Ingress: enabled" "$out"
fi
# Errors in Traefik's log, but two kinds that are no fault of the chart: the missing web
# UI of a Go-module build (the dashboard page; its API works), and "middleware ... does
# not exist" while the two providers load independently at start-up (the Ingress
# provider may publish its routers before the CRD provider has its Middleware; the
# routers above were then checked to be enabled with no error).
all_errors=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/traefik.log" | grep -E '^[^ ]+ (ERR|FTL|PNC) ' \
  | grep -vF 'Error appending dashboard to API router error="parsing index template: template: pattern matches no files:' || true)
errors=$(grep -vF "error=\"middleware \\\"$NS-$RELEASE-strip-prefix@kubernetescrd\\\" does not exist\"" <<<"$all_errors" || true)
transient=$(grep -c . <<<"$all_errors" || true)
transient=$((transient - $(grep -c . <<<"$errors" || true)))
if [ -z "$errors" ]; then ok "Traefik logged no errors (but $transient transient at start-up: middleware not yet loaded)"
else fail "Traefik logged no errors" "$(head -5 <<<"$errors")"; fi

printf '\ngateway-kube: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
