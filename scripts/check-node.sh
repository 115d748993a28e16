#!/usr/bin/env bash
# docs/deployment.md's minikube walkthrough on a real node: the chart's Pods run by the
# kubelet and containerd of scripts/node.sh, from the images built here. The steps and
# their verdicts are a Rust harness (platformctl/tests/node); this script wires it up:
#
#   1. scripts/docker.sh up, scripts/images.sh build   the engine and the third-party
#      images (no registry is reachable); the three service images built from the
#      Dockerfile as the walkthrough builds them (`docker build --target ... -t ...:0.1.0`)
#   2. scripts/node.sh up, then `load`                  the node, and the images loaded
#      into its containerd as `minikube image load` does
#   3. Traefik's CRDs and ClusterRole, from Traefik's own reference files (what its Helm
#      chart installs; the harness deploys Traefik itself)
#   4. the harness
#
# Needs root. Ends with the harness's line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/deploy-tools.sh
. scripts/lib/deploy-tools.sh
LOG_TAG=node

[ "$(id -u)" = 0 ] || die "the node needs root (network namespaces, cgroups, mounts)"
ensure_helm
ensure_go

eval "$(scripts/docker.sh up)"
scripts/images.sh build
VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/platform/Chart.yaml)
[ -n "$VERSION" ] || die "cannot read appVersion from charts/platform/Chart.yaml"
images=()
for target in user-service notification-service prediction-service; do
  log "docker build --target $target -t platform/$target:$VERSION ."
  docker build -q --target "$target" -t "platform/$target:$VERSION" . >/dev/null \
    || die "building the $target image failed"
  images+=("platform/$target:$VERSION")
done

eval "$(scripts/node.sh up)"
# What the chart runs besides the services (values-minikube.yaml, Grafana turned off),
# the ingress controller, and the sandbox image.
TRAEFIK_IMAGE=$(sed -n 's/^ *image: *\(traefik:v[0-9.]*\) *$/\1/p' docker-compose.yml | head -n1)
[ -n "$TRAEFIK_IMAGE" ] || die "cannot read Traefik's image from docker-compose.yml"
scripts/node.sh load "${images[@]}" mysql:8.4.6 apache/kafka:4.1.1 prom/prometheus:v3.5.0 \
  curlimages/curl:8.15.0 registry.k8s.io/pause:3.10 "$TRAEFIK_IMAGE"

log "Traefik ${TRAEFIK_IMAGE#traefik:}'s CRDs and ClusterRole"
module=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@${TRAEFIK_IMAGE#traefik:}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || die "go mod download of Traefik failed"
reference="$module/docs/content/reference/dynamic-configuration"
kubectl apply --server-side --force-conflicts -f "$reference/kubernetes-crd-definition-v1.yml" >/dev/null \
  || die "the API server refused Traefik's CRDs"
kubectl wait --for=condition=Established --timeout=60s crd/middlewares.traefik.io >/dev/null
kubectl apply --server-side --force-conflicts -f "$reference/kubernetes-crd-rbac.yml" >/dev/null \
  || die "the API server refused Traefik's ClusterRole"

log "running the walkthrough"
env HELM="$TOOLS_BIN/helm" cargo test -p platformctl --features harnesses --test node --locked
