#!/usr/bin/env bash
# Regenerates the plain manifests in k8s/ from the Helm chart with the minikube
# values, so `k8s/deploy.sh` deploys exactly what `helm install` would.
#
#   scripts/render-k8s.sh           rewrite k8s/platform.yaml
#   scripts/render-k8s.sh --check   fail if k8s/ differs from a fresh render
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"

RELEASE=platform
NAMESPACE=platform
CHART="$REPO_ROOT/charts/platform"
OUT="$REPO_ROOT/k8s/platform.yaml"

render() {
  # --skip-tests: the helm test Pod is not part of a deployment. Hook objects
  # (migration and topic Jobs) are plain objects to kubectl and run at apply time.
  {
    echo "# Rendered from charts/platform with values-minikube.yaml by scripts/render-k8s.sh."
    echo "# Do not edit: change the chart and run scripts/render-k8s.sh."
    helm template "$RELEASE" "$CHART" \
      --namespace "$NAMESPACE" \
      -f "$CHART/values-minikube.yaml" \
      --skip-tests
  } > "$1"
}

command -v helm >/dev/null 2>&1 || ensure_helm

case "${1:-}" in
  --check)
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    render "$tmp"
    if ! diff -u "$OUT" "$tmp" > "$tmp.diff" 2>&1; then
      head -40 "$tmp.diff" >&2
      rm -f "$tmp.diff"
      die "k8s/platform.yaml is not a fresh render of the chart: run scripts/render-k8s.sh"
    fi
    rm -f "$tmp.diff"
    log "k8s/platform.yaml matches a fresh render of the chart"
    ;;
  "")
    render "$OUT"
    log "wrote ${OUT#"$REPO_ROOT"/}"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
