#!/usr/bin/env bash
# Runs every test of the platform, on a fresh machine or a warm one.
#
#   1. rustfmt, clippy (-D warnings) and unused dependencies (cargo-machete)
#   2. the whole workspace on the embedded backends (SQLite, librdkafka mock cluster)
#   3. MariaDB and an Apache Kafka broker installed and started by scripts/deps.sh
#      (reused when already running), then the same tests against them, the model's
#      parity test included: the service's evaluator against scikit-learn's fixture and
#      against tract's answers, written by scripts/tract-parity.sh (tract is built once
#      into the cache, outside the workspace, in the background from the start of the run)
#   4. fault tests: service processes with Kafka killed, MariaDB stopped, services killed,
#      and gray failures: MariaDB, the broker or a consumer replica frozen (SIGSTOP), a
#      COMMIT answered after the deadline, a packet-dropping partition from the broker
#   5. every dashboard panel and alert rule evaluated by a real Prometheus scraping the
#      services and a real Traefik (scripts/check-dashboards.sh)
#   6. the gateway: a real Traefik with compose's flags and deploy/traefik/dynamic.yml in
#      front of the services, Swagger UI in headless Chromium (scripts/check-gateway.sh)
#   7. the committed ONNX model retrained bit for bit (scripts/check-model.sh), API fuzzing
#      (schemathesis) and the deployment artifacts, validated offline by
#      scripts/check-deploy.sh
#   8. containers (scripts/check-compose.sh): a Docker engine in its own network namespace
#      (scripts/docker.sh), the images compose pulls built here (scripts/images.sh: no
#      registry is reachable; MariaDB stands in for MySQL, Grafana is left out), the three
#      service images built from the Dockerfile and checked, and the compose walkthrough
#      of docs/deployment.md with faults under load
#   9. a local Kubernetes control plane (scripts/kube.sh: etcd, kube-apiserver,
#      kube-controller-manager, built once from the Go module proxy): the chart's whole
#      lifecycle on it (scripts/check-chart-cluster.sh), platformctl's cluster commands
#      with the service binaries standing in for pods (scripts/check-cluster.sh), and
#      Traefik's Kubernetes providers loading the chart's routes (scripts/check-gateway-kube.sh)
#  10. a node on that control plane (scripts/node.sh: kubelet, containerd, CNI bridge,
#      kube-proxy, scheduler, CoreDNS, a hostpath provisioner) running the chart's pods
#      from the images built in step 8: docs/deployment.md's minikube walkthrough, helm
#      test, the ingress, and upgrades and pod deletions under load (scripts/check-node.sh)
#
# Nothing is skipped: a dependency that cannot be installed or started fails the run with
# a message saying what is missing. Ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# Runs a check script, keeps its output; its "N passed, N failed" line counts in the totals.
check_script() {
  local name=$1
  shift
  "$@" 2>&1 | tee "$log_dir/script-$name.log"
  return "${PIPESTATUS[0]}"
}

# Runs cargo test with the given environment, keeps the output for the totals.
cargo_test() {
  local name=$1
  shift
  env "$@" cargo test --workspace --locked 2>&1 | tee "$log_dir/$name.log"
  return "${PIPESTATUS[0]}"
}

# cargo-machete, pinned, built once into the platform's cache and reused afterwards.
CARGO_MACHETE_VERSION=0.9.2
ensure_cargo_machete() {
  local root="${PLATFORM_CACHE:-${HOME:-/root}/.cache/platform}/cargo-machete-$CARGO_MACHETE_VERSION"
  if [ ! -x "$root/bin/cargo-machete" ]; then
    echo "installing cargo-machete $CARGO_MACHETE_VERSION into $root (once)"
    cargo install cargo-machete --locked --version "$CARGO_MACHETE_VERSION" --root "$root" \
      || { echo "cannot install cargo-machete $CARGO_MACHETE_VERSION from the crate registry (cargo install failed above)" >&2; exit 1; }
  fi
  CARGO_MACHETE="$root/bin/cargo-machete"
}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo --version

step "tract's answers on the parity rows (scripts/tract-parity.sh), in the background"
# tract takes minutes to compile the first time (it is cached afterwards): it builds at the
# lowest priority while the steps below wait on the network, the disk and the services, and
# the real-backend pass, which compares the evaluator with tract, waits for it.
tract_predictions="$log_dir/tract-predictions.json"
nice -n 19 scripts/tract-parity.sh predict "$tract_predictions" >"$log_dir/tract.log" 2>&1 &
tract_pid=$!
trap 'kill "$tract_pid" 2>/dev/null || true; rm -rf "$log_dir"' EXIT

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "unused dependencies (cargo-machete)"
ensure_cargo_machete
# False positives are listed, with the reason, under [package.metadata.cargo-machete].
"$CARGO_MACHETE" --skip-target-dir

step "SMTP test server: aiosmtpd in a venv (scripts/smtp-sink.sh install)"
scripts/smtp-sink.sh install

step "tests on the embedded backends (SQLite + librdkafka mock cluster)"
# tract's parity is checked in the real-backend pass below.
cargo_test embedded PLATFORM_TEST_BACKEND=embedded

step "real MariaDB and Kafka (scripts/deps.sh)"
eval "$(scripts/deps.sh up)"

step "tract's answers (waiting for scripts/tract-parity.sh)"
wait "$tract_pid" || { cat "$log_dir/tract.log" >&2; echo "scripts/tract-parity.sh failed: tract's answers for the parity test are missing (its output is above)" >&2; exit 1; }
cat "$log_dir/tract.log"

step "tests on real MariaDB $(mariadb --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*-MariaDB' | head -1) and Kafka at $TEST_KAFKA_BROKERS"
cargo_test real PLATFORM_TEST_BACKEND=real TEST_MYSQL_URL="$TEST_MYSQL_URL" TEST_KAFKA_BROKERS="$TEST_KAFKA_BROKERS" \
  TEST_TRACT_PREDICTIONS="$tract_predictions"

step "real-stack tests: faults (Kafka killed, MariaDB stopped, services killed, stalls, a partition) and SASL"
# The partition test puts the services on a test host (a network namespace) and cuts its
# link to the broker with tc: that needs root and iproute2.
[ "$(id -u)" = 0 ] || { echo "the fault tests need root: the partition test creates a network namespace" >&2; exit 1; }
command -v tc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
cargo build --workspace --bins --locked
env PLATFORM_TEST_BACKEND=real TEST_MYSQL_URL="$TEST_MYSQL_URL" TEST_KAFKA_BROKERS="$TEST_KAFKA_BROKERS" \
  TEST_KAFKA_SASL_BROKERS="$TEST_KAFKA_SASL_BROKERS" TEST_KAFKA_SASL_USERNAME="$TEST_KAFKA_SASL_USERNAME" \
  TEST_KAFKA_SASL_PASSWORD="$TEST_KAFKA_SASL_PASSWORD" \
  cargo test -p platformctl --features harnesses --test faults --locked -- --test-threads=1 --nocapture 2>&1 |
  tee "$log_dir/faults.log"
[ "${PIPESTATUS[0]}" -eq 0 ]

step "dashboards and alert rules on a real Prometheus (scripts/check-dashboards.sh)"
scripts/check-dashboards.sh

step "the gateway: a real Traefik in front of the services (scripts/check-gateway.sh)"
check_script gateway scripts/check-gateway.sh

step "the committed model is what models/train.sh produces (scripts/check-model.sh)"
scripts/check-model.sh

step "API fuzzing: schemathesis against both OpenAPI documents"
scripts/fuzz-api.sh 100

step "deployment artifacts (scripts/check-deploy.sh)"
scripts/check-deploy.sh

step "containers: the images and the compose walkthrough on a real Docker engine (scripts/check-compose.sh)"
check_script compose scripts/check-compose.sh

step "local Kubernetes control plane (scripts/kube.sh)"
# The checks below stand in for the kubelet where they need one; a node left running by
# an earlier run (scripts/node.sh) would run their pods for real, so it goes first.
scripts/node.sh down
eval "$(scripts/kube.sh up)"

step "the chart's lifecycle on the API server (scripts/check-chart-cluster.sh)"
check_script chart scripts/check-chart-cluster.sh

step "platformctl status and consumer pause/resume on the cluster (scripts/check-cluster.sh)"
check_script cluster scripts/check-cluster.sh

step "Traefik's Kubernetes providers load the chart's routes (scripts/check-gateway-kube.sh)"
check_script gateway-kube scripts/check-gateway-kube.sh

step "a node that runs the pods: the minikube walkthrough, under load (scripts/check-node.sh)"
check_script node scripts/check-node.sh

step "summary"
{
  cat "$log_dir"/*.log | awk '/^test result:/ { print $4, $6 }'
  # The scripts' own "N passed, N failed" lines.
  cat "$log_dir"/script-*.log | grep -Eo '[0-9]+ passed, [0-9]+ failed' | awk '{ print $1, $3 }'
} | awk '
  { passed += $1; failed += $2 }
  END { printf "%d passed, %d failed\n", passed, failed; exit failed > 0 }'
