#!/usr/bin/env bash
# Deploys the platform from the plain manifests in this directory (rendered from
# charts/platform with values-minikube.yaml by scripts/render-k8s.sh).
#
#   k8s/deploy.sh            apply, wait for the rollout, print how to reach it
#   k8s/deploy.sh --delete   remove everything (the namespace included)
#
# Needs kubectl pointed at the cluster, and the images platform/user-service:0.1.0
# and platform/notification-service:0.1.0 available to it (minikube image build,
# see docs/deployment.md). Runs from any directory.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NS=platform
TIMEOUT="${TIMEOUT:-600s}"

log() { printf '[deploy] %s\n' "$*"; }
die() { printf '[deploy] FAILED: %s\n' "$*" >&2; exit 1; }

command -v kubectl >/dev/null || die "kubectl not found"
kubectl version --request-timeout=10s >/dev/null 2>&1 \
  || die "no cluster reachable with the current kubectl context ($(kubectl config current-context 2>/dev/null || echo none))"

if [ "${1:-}" = "--delete" ]; then
  log "deleting the platform"
  kubectl delete -f "$DIR/platform.yaml" --ignore-not-found --wait=false
  kubectl delete -f "$DIR/namespace.yaml" --ignore-not-found
  exit 0
fi

log "applying namespace $NS"
kubectl apply -f "$DIR/namespace.yaml"

manifests="$DIR/platform.yaml"
if ! kubectl get crd middlewares.traefik.io >/dev/null 2>&1; then
  log "WARNING: Traefik's CRDs are not installed; skipping the strip-prefix Middleware."
  log "         Install Traefik (docs/deployment.md) and re-run this script for /api/* routing."
  manifests=$(mktemp)
  trap 'rm -f "$manifests"' EXIT
  # Drop the documents of kind Middleware; keep everything else as rendered.
  awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/\nkind: Middleware\n/' "$DIR/platform.yaml" > "$manifests"
fi

# Jobs are immutable: remove finished migration/topic Jobs so a new image or
# configuration runs them again (both are idempotent).
kubectl -n "$NS" delete job -l 'app.kubernetes.io/component in (migrations,topics)' --ignore-not-found

log "applying the platform"
kubectl apply -f "$manifests"

log "waiting for MySQL and Kafka (first start takes a minute or two)"
for sts in platform-mysql platform-kafka; do
  kubectl -n "$NS" rollout status "statefulset/$sts" --timeout="$TIMEOUT"
done
log "waiting for the topic and migration Jobs"
kubectl -n "$NS" wait --for=condition=complete job \
  -l 'app.kubernetes.io/component in (migrations,topics)' --timeout="$TIMEOUT" \
  || die "a Job did not complete: kubectl -n $NS logs job/<name>"
log "waiting for the services and monitoring"
for deploy in platform-user-service platform-notification-service platform-prometheus platform-grafana; do
  kubectl -n "$NS" rollout status "deployment/$deploy" --timeout="$TIMEOUT"
done

cat <<INFO
[deploy] the platform is running in namespace $NS

  Gateway (Traefik, IngressClass traefik):
    minikube service -n traefik traefik --url      # then <url>/api/users/docs
  or without Traefik, directly:
    kubectl -n $NS port-forward svc/platform-user-service 8000:8000
    kubectl -n $NS port-forward svc/platform-notification-service 8001:8001
    ./generate-test-data.sh 20                     # from the repository root

  Grafana (admin / admin), Prometheus:
    kubectl -n $NS port-forward svc/platform-grafana 3000:3000
    kubectl -n $NS port-forward svc/platform-prometheus 9090:9090

  Admin token (for /users/, /notifications): dev-admin-token
INFO
