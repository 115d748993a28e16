#!/usr/bin/env bash
# Runs every test of the platform, on a fresh machine or a warm one.
#
#   1. rustfmt and clippy (-D warnings)
#   2. the whole workspace on the embedded backends (SQLite, librdkafka mock cluster)
#   3. MariaDB and an Apache Kafka broker installed and started by scripts/deps.sh
#      (reused when already running), then the same tests against them
#   4. fault tests: service processes with Kafka killed, MariaDB stopped, services killed
#   5. every dashboard panel and alert rule evaluated by a real Prometheus scraping the
#      services (scripts/check-dashboards.sh)
#   6. the deployment artifacts (compose, Helm chart, k8s/, Prometheus, dashboards),
#      validated offline by scripts/check-deploy.sh
#
# Nothing is skipped: a dependency that cannot be installed or started fails the run with
# a message saying what is missing. Ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# Runs cargo test with the given environment, keeps the output for the totals.
cargo_test() {
  local name=$1
  shift
  env "$@" cargo test --workspace --locked 2>&1 | tee "$log_dir/$name.log"
  return "${PIPESTATUS[0]}"
}

step "toolchain"
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
cargo --version

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "SMTP test server: aiosmtpd in a venv (scripts/smtp-sink.sh install)"
scripts/smtp-sink.sh install

step "tests on the embedded backends (SQLite + librdkafka mock cluster)"
cargo_test embedded PLATFORM_TEST_BACKEND=embedded

step "real MariaDB and Kafka (scripts/deps.sh)"
eval "$(scripts/deps.sh up)"

step "tests on real MariaDB $(mariadb --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*-MariaDB' | head -1) and Kafka at $TEST_KAFKA_BROKERS"
cargo_test real PLATFORM_TEST_BACKEND=real TEST_MYSQL_URL="$TEST_MYSQL_URL" TEST_KAFKA_BROKERS="$TEST_KAFKA_BROKERS"

step "real-stack tests: faults (Kafka killed, MariaDB stopped, services killed) and SASL"
cargo build --workspace --bins --locked
env PLATFORM_TEST_BACKEND=real TEST_MYSQL_URL="$TEST_MYSQL_URL" TEST_KAFKA_BROKERS="$TEST_KAFKA_BROKERS" \
  TEST_KAFKA_SASL_BROKERS="$TEST_KAFKA_SASL_BROKERS" TEST_KAFKA_SASL_USERNAME="$TEST_KAFKA_SASL_USERNAME" \
  TEST_KAFKA_SASL_PASSWORD="$TEST_KAFKA_SASL_PASSWORD" \
  cargo test -p platformctl --features fault-tests --test faults --locked -- --test-threads=1 --nocapture 2>&1 |
  tee "$log_dir/faults.log"
[ "${PIPESTATUS[0]}" -eq 0 ]

step "dashboards and alert rules on a real Prometheus (scripts/check-dashboards.sh)"
scripts/check-dashboards.sh

step "API fuzzing: schemathesis against both OpenAPI documents"
scripts/fuzz-api.sh 100

if [ -x scripts/check-deploy.sh ]; then
  step "deployment artifacts (scripts/check-deploy.sh)"
  scripts/check-deploy.sh
fi

step "summary"
cat "$log_dir"/*.log | awk '
  /^test result:/ { passed += $4; failed += $6 }
  END { printf "%d passed, %d failed\n", passed, failed; exit failed > 0 }'
