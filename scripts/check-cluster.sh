#!/usr/bin/env bash
# platformctl's cluster commands (`status`, `consumer pause|resume|status`) on the
# local Kubernetes control plane of scripts/kube.sh, with the chart installed by Helm
# and its pods run by the test (platformctl/tests/cluster): the one simulated part is
# the kubelet. The real service binaries run as the pods, each in a network namespace
# of its own (10.200.0.0/16, reached by the API server's pod proxy), against the real
# MariaDB and Kafka of scripts/deps.sh.
#
# Needs root (network namespaces). Starts or reuses the control plane and MariaDB/Kafka
# when their variables are not set yet.
#
# Usage: scripts/check-cluster.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/deploy-tools.sh
. "$REPO_ROOT/scripts/lib/deploy-tools.sh"
cd "$REPO_ROOT"

[ "$(id -u)" = 0 ] || die "the cluster tests need root (they create network namespaces)"
command -v ip >/dev/null || apt_install iproute2
ensure_helm
if [ -z "${KUBECONFIG:-}" ]; then eval "$(scripts/kube.sh up)"; fi
if [ -z "${TEST_MYSQL_URL:-}" ] || [ -z "${TEST_KAFKA_BROKERS:-}" ]; then
  eval "$(scripts/deps.sh up)"
fi

cargo build -p user-service -p notification-service --locked
env PLATFORM_TEST_BACKEND=real HELM="$TOOLS_BIN/helm" KUBECONFIG="$KUBECONFIG" \
  TEST_MYSQL_URL="$TEST_MYSQL_URL" TEST_KAFKA_BROKERS="$TEST_KAFKA_BROKERS" \
  cargo test -p platformctl --features harnesses --test cluster --locked -- --nocapture
