#!/usr/bin/env bash
# Benchmarks the platform against the real MariaDB and Kafka of scripts/deps.sh with
# release builds, and writes every figure to docs/benchmarks.md.
#
#   scripts/bench.sh [--quick]
#
#   --quick          shorter runs (smoke test of this script; figures are noisier)
#   BENCH_SECONDS    seconds per throughput run (default 10)
#   BENCH_LEVELS     concurrency levels (default "4 16 64")
#   BENCH_DRAIN      outbox rows per drain run (default 100000); the consumer catch-up
#                    then reads the 2 x BENCH_DRAIN events of the two drain runs
#   BENCH_WARMUP     seconds of warm-up load, not reported (default 20)
#   BENCH_PREDICT_LEVELS  concurrency levels of Kafka request/reply (default "64 256 1024")
#   BENCH_OUT        report file (default docs/benchmarks.md)
#
# What it measures, in one run so that ratios share the machine's state:
#   1. the limit: the registration transaction (user + outbox row) straight through the
#      store, no HTTP, no Kafka (`platformctl load --database-url`), per concurrency;
#   2. POST /register/ throughput per concurrency (`platformctl load`) and its ratio to
#      the limit at the same concurrency;
#   3. end-to-end latency (request sent -> notification recorded) at half the best
#      throughput (`--rate`, `--verify`);
#   4. outbox drain: registrations (user + outbox row) written through the store with no
#      relay running (`platformctl load --database-url`), then a user-service with the
#      relay started; time until the outbox is empty;
#   5. consumer catch-up: the drained events already in the topic, a fresh
#      notification-service group; time until all are delivered and recorded;
#   6. RSS of each service idle and at its highest load, and start -> /health/ready.
#
# Alongside every throughput and latency run it records where the work went (the
# profile the analysis in docs/benchmarks-notes.md rests on): CPU milliseconds per
# registration of MariaDB, the Kafka broker, each service and the load generator (from
# /proc/<pid>/stat and the shell's child times), and the SQL statements, pings and
# fsyncs MariaDB served per registration (SHOW GLOBAL STATUS). A warm-up run first lets
# the broker's JIT compiler settle; its figures are not reported.
#
# Commits are durable for the whole run: scripts/deps.sh configures MariaDB with
# innodb_flush_log_at_trx_commit=2 for fast tests; this script sets the default (1) with
# SET GLOBAL and restores the previous value on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

SECONDS_PER_RUN=${BENCH_SECONDS:-10}
LEVELS=${BENCH_LEVELS:-"4 16 64"}
DRAIN_ROWS=${BENCH_DRAIN:-100000}
WARMUP_SECONDS=${BENCH_WARMUP:-20}
OUT=${BENCH_OUT:-docs/benchmarks.md}
if [ "${1:-}" = "--quick" ]; then
  SECONDS_PER_RUN=3 LEVELS="4 16" DRAIN_ROWS=5000 WARMUP_SECONDS=3
fi
COMMAND="scripts/bench.sh${*:+ $*}"
RUN=$(date +%s)-$$
WORK=$(mktemp -d)
TOKEN=bench-$RUN
PIDS=()

LOG_TAG=bench LOG_FD=2 DIE_WORD=ERROR

eval "$(scripts/deps.sh up)"
MEMORY_AT_START=$(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available at the start"}')
root_sql() { mariadb --protocol=socket --socket=/run/mysqld/mysqld.sock -uroot -N -B -e "$1"; }
# -u/-p of the test account, over TCP like the services.
sql() { mariadb --protocol=tcp -h127.0.0.1 -P3306 -uplatform_test -pplatform_test -N -B "$1" -e "$2"; }

DBS=(test_bench_limit_$$ test_bench_users_$$ test_bench_drain_$$ test_bench_notif_$$ test_bench_catchup_$$)
FLUSH_BEFORE=$(root_sql 'SELECT @@GLOBAL.innodb_flush_log_at_trx_commit')

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  root_sql "SET GLOBAL innodb_flush_log_at_trx_commit = $FLUSH_BEFORE" || true
  for db in "${DBS[@]}"; do root_sql "DROP DATABASE IF EXISTS $db" || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "release build"
cargo build --release --workspace --bins >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for db in "${DBS[@]}"; do
  root_sql "CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
done
root_sql 'SET GLOBAL innodb_flush_log_at_trx_commit = 1'
url() { echo "$TEST_MYSQL_URL/$1"; }

now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Smallest / largest of the numbers given (empty ones ignored).
minimum() { printf '%s\n' "$@" | grep . | sort -g | head -1; }
maximum() { printf '%s\n' "$@" | grep . | sort -g | tail -1; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }

# Starts a service binary; sets STARTED_PID, STARTED_PORT, READY_MS (start -> ready 200).
start_service() {
  local name=$1; shift
  local port; port=$(free_port)
  local t0; t0=$(now_ms)
  env HTTP_ADDR="127.0.0.1:$port" ADMIN_TOKEN="$TOKEN" KAFKA_BOOTSTRAP_SERVERS="$TEST_KAFKA_BROKERS" \
    RUST_LOG="${BENCH_RUST_LOG:-info}" LOG_FORMAT=json "$@" "$BIN/$name" >"$WORK/$name-$port.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_PORT=$port
  until curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$STARTED_PID" 2>/dev/null || die "$name exited; log: $(tail -5 "$WORK/$name-$port.log")"
    (($(now_ms) - t0 < 60000)) || die "$name not ready within 60 s"
    sleep 0.01
  done
  READY_MS=$(($(now_ms) - t0))
}

stop_service() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Highest VmRSS of pid while the caller's work runs: sampler in the background.
sample_rss() {
  local pid=$1 file=$2 max=0 rss
  while kill -0 "$pid" 2>/dev/null; do
    rss=$(rss_kib "$pid" 2>/dev/null || echo 0)
    ((rss > max)) && max=$rss && echo "$max" >"$file"
    sleep 0.2
  done
}

metric() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s) == 1 { sum += $NF } END { printf "%d", sum }'
}

# ---- where the work goes: CPU per process and MariaDB's statement counters ----
TICK=$(getconf CLK_TCK)
MARIADB_PID=$(cat /run/mysqld/mysqld.pid)
KAFKA_PID=$(cat "${KAFKA_DATA_DIR:-/tmp/platform-kafka}/kafka.pid")
# CPU milliseconds a process has used so far (all its threads).
cpu_ms() { awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%d", ($12 + $13) * 1000 / t }' "/proc/$1/stat"; }
DB_COUNTERS="'Questions','Com_admin_commands','Innodb_data_fsyncs'"
db_counters() {
  root_sql "SHOW GLOBAL STATUS WHERE Variable_name IN ($DB_COUNTERS)" | sort | awk '{ printf "%s ", $2 }'
}
# snapshot VAR PID PID: sets VAR to a snapshot: CPU ms of mariadb, kafka, the two
# services measured (the user- and notification-service, or the prediction-service and
# 0; 0 when not running) and of this shell's finished children (the load generator runs
# as one), then MariaDB's counters. Not in a subshell: `times` must see this shell's
# children.
snapshot() {
  local var=$1 pid out=""
  shift
  for pid in "$MARIADB_PID" "$KAFKA_PID" "$@"; do
    if [ "$pid" != 0 ] && [ -r "/proc/$pid/stat" ]; then out+="$(cpu_ms "$pid") "; else out+="0 "; fi
  done
  times >"$WORK/times"
  out+="$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$WORK/times") "
  printf -v "$var" '%s' "$out$(db_counters)"
}
# "| a | b | …" per-registration figures between two snapshots over n registrations:
# CPU ms per 1000 registrations of mariadb, kafka, user-service, notification-service,
# load generator, their sum; then statements, pings and fsyncs per registration.
profile_row() {
  awk -v n="$3" -v a="$1" -v b="$2" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    total = 0; row = "";
    for (i = 1; i <= 5; i++) { v = (y[i] - x[i]) * 1000 / n; total += v; row = row sprintf(" %.0f |", v) }
    # sorted counter names: Com_admin_commands, Innodb_data_fsyncs, Questions
    row = row sprintf(" **%.0f** | %.2f | %.2f | %.2f |", total, (y[8] - x[8]) / n, (y[6] - x[6]) / n, (y[7] - x[7]) / n);
    print row }'
}

# Events the notification-service handled: delivered or recognised as duplicates.
handled() {
  local d; d=$(metric "$1" 'events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}')
  local u; u=$(metric "$1" 'events_consumed_total{event_type="com.platform.user.registered.v1",outcome="duplicate"}')
  echo $((d + u))
}
# Waits until the notification-service of the API runs has handled $1 events.
wait_handled() {
  local t0; t0=$(now_ms)
  until [ "$(handled "$NOTIF_PORT")" -ge "$1" ]; do
    (($(now_ms) - t0 < 600000)) || die "consumer did not catch up within 10 min"
    sleep 0.2
  done
}

topic() { "$BIN/platformctl" topics create --bootstrap-servers "$TEST_KAFKA_BROKERS" --kafka-topic "$1" --partitions 6 >/dev/null 2>&1; }

load() { "$BIN/platformctl" load --json "$@"; }

# ---------------------------------------------------------------------------------------
TOPIC=bench-$RUN
topic "$TOPIC"
log "starting services (topic $TOPIC)"
start_service user-service DATABASE_URL="$(url "${DBS[1]}")" KAFKA_TOPIC="$TOPIC"
USERS_PID=$STARTED_PID USERS_PORT=$STARTED_PORT USERS_READY=$READY_MS
start_service notification-service DATABASE_URL="$(url "${DBS[3]}")" KAFKA_TOPIC="$TOPIC" \
  KAFKA_GROUP_ID="bench-$RUN"
NOTIF_PID=$STARTED_PID NOTIF_PORT=$STARTED_PORT NOTIF_READY=$READY_MS
sleep 2
USERS_IDLE=$(rss_kib "$USERS_PID") NOTIF_IDLE=$(rss_kib "$NOTIF_PID")

sample_rss "$USERS_PID" "$WORK/users.rss" & PIDS+=($!)
sample_rss "$NOTIF_PID" "$WORK/notif.rss" & PIDS+=($!)

# Warm-up: the broker's JIT compiler, MariaDB's buffer pool and the services' pools reach
# their steady state. Not reported; its events count towards the consumer's total.
log "warm-up: $WARMUP_SECONDS s of POST /register/ at concurrency 16"
load --url "http://127.0.0.1:$USERS_PORT" -c 16 --duration "$WARMUP_SECONDS" >"$WORK/warmup.json"
WARMUP_CREATED=$(json "$WORK/warmup.json" 'd["created"]')
wait_handled "$WARMUP_CREATED"

# 1 + 2: the limit and the API, alternating per level so both see the same machine.
THROUGHPUT_ROWS=""
PROFILE_ROWS=""
before="" after="" # set by snapshot
RATIOS=""
BEST=0
CREATED=$WARMUP_CREATED
for c in $LEVELS; do
  log "limit at concurrency $c"
  snapshot before "$USERS_PID" "$NOTIF_PID"
  load --database-url "$(url "${DBS[0]}")" -c "$c" --duration "$SECONDS_PER_RUN" >"$WORK/limit-$c.json"
  snapshot after "$USERS_PID" "$NOTIF_PID"
  PROFILE_ROWS+="| limit, c=$c |$(profile_row "$before" "$after" "$(json "$WORK/limit-$c.json" 'd["created"]')")"$'\n'
  log "POST /register/ at concurrency $c"
  snapshot before "$USERS_PID" "$NOTIF_PID"
  load --url "http://127.0.0.1:$USERS_PORT" -c "$c" --duration "$SECONDS_PER_RUN" >"$WORK/http-$c.json"
  n=$(json "$WORK/http-$c.json" 'd["created"]')
  CREATED=$((CREATED + n))
  # The relay and the consumer finish this run's events before the next run starts, so
  # their work is counted here and does not spill into the next run.
  wait_handled "$CREATED"
  snapshot after "$USERS_PID" "$NOTIF_PID"
  PROFILE_ROWS+="| API, c=$c |$(profile_row "$before" "$after" "$n")"$'\n'
  lim=$(json "$WORK/limit-$c.json" 'round(d["throughput_per_second"], 1)')
  api=$(json "$WORK/http-$c.json" 'round(d["throughput_per_second"], 1)')
  lat=$(json "$WORK/http-$c.json" '"%.2f / %.2f / %.2f / %.2f / %.2f" % tuple(d["latency_ms"][k] for k in ("p50","p90","p99","p999","max"))')
  limlat=$(json "$WORK/limit-$c.json" '"%.2f / %.2f" % (d["latency_ms"]["p50"], d["latency_ms"]["p99"])')
  errs=$(json "$WORK/http-$c.json" 'd["errors"]')
  ratio=$(awk -v a="$api" -v l="$lim" 'BEGIN { printf "%.0f %%", 100 * a / l }')
  RATIOS+="${ratio% %} "
  THROUGHPUT_ROWS+="| $c | $lim | $limlat | $api | $ratio | $lat | $errs |"$'\n'
  BEST=$(maximum "$api" "$BEST")
done
USERS_MAX=$(cat "$WORK/users.rss")

# 3: end-to-end latency at half the best throughput (the consumer has caught up with
# the runs above, so this measures the pipeline, not a backlog).
HALF=$(awk -v b="$BEST" 'BEGIN { printf "%d", b / 2 }')
log "end-to-end latency at $HALF registrations/s"
snapshot before "$USERS_PID" "$NOTIF_PID"
load --url "http://127.0.0.1:$USERS_PORT" -c 64 --rate "$HALF" --duration "$SECONDS_PER_RUN" --verify \
  --notifications-database-url "$(url "${DBS[3]}")" >"$WORK/e2e.json" || die "verify failed: $(cat "$WORK/e2e.json")"
snapshot after "$USERS_PID" "$NOTIF_PID"
PROFILE_ROWS+="| API at $HALF/s (end-to-end run) |$(profile_row "$before" "$after" "$(json "$WORK/e2e.json" 'd["created"]')")"$'\n'
E2E=$(json "$WORK/e2e.json" '"%.2f | %.2f | %.2f | %.2f" % tuple(d["verify"]["end_to_end_latency_ms"][k] for k in ("p50","p90","p99","max"))')
E2E_REQ=$(json "$WORK/e2e.json" '"%.2f | %.2f" % (d["latency_ms"]["p50"], d["latency_ms"]["p99"])')
E2E_N=$(json "$WORK/e2e.json" 'd["verify"]["delivered"]')
E2E_ONCE=$(json "$WORK/e2e.json" 'd["verify"]["exactly_once"]')
E2E_RATE=$(json "$WORK/e2e.json" 'round(d["throughput_per_second"], 1)')
NOTIF_LOADED=$(cat "$WORK/notif.rss")
stop_service "$USERS_PID"
stop_service "$NOTIF_PID"
USERS_PID=0 NOTIF_PID=0

# 4: outbox drain. Registrations are written through the user-service store with no relay
# running (as after a Kafka outage), so the rows and their events are the service's own;
# then one user-service with its relay starts. Twice, into one topic: the second run is
# the noise check, and together they feed the consumer catch-up.
DRAIN_TOPIC=bench-drain-$RUN
topic "$DRAIN_TOPIC"
DRAIN_DB=$(url "${DBS[2]}")
log "migrating the drain database"
start_service user-service DATABASE_URL="$DRAIN_DB" KAFKA_TOPIC="$DRAIN_TOPIC" OUTBOX_RELAY=false
stop_service "$STARTED_PID"
fill_outbox() {
  local round=$1
  load --database-url "$DRAIN_DB" -c 64 --count "$DRAIN_ROWS" --run-id "drain-$RUN-$round" \
    >"$WORK/fill-$round.json" || die "filling the outbox failed: $(cat "$WORK/fill-$round.json")"
}
DRAIN_ROWS_MD=""
DRAIN_RATES=""
RELAY_RSS=0
for round in 1 2; do
  log "outbox drain $round: inserting $DRAIN_ROWS rows"
  fill_outbox "$round"
  start_service user-service DATABASE_URL="$DRAIN_DB" KAFKA_TOPIC="$DRAIN_TOPIC" OUTBOX_BATCH_SIZE="${BENCH_OUTBOX_BATCH:-500}"
  t0=$(now_ms)
  sample_rss "$STARTED_PID" "$WORK/relay.rss" & PIDS+=($!)
  until [ "$(sql "${DBS[2]}" 'SELECT COUNT(*) FROM outbox')" = 0 ]; do
    (($(now_ms) - t0 < 600000)) || die "outbox not drained within 10 min"
    sleep 0.1
  done
  ms=$(($(now_ms) - t0))
  until [ "$(metric "$STARTED_PORT" 'outbox_backlog ')" = 0 ]; do sleep 0.1; done
  rate=$(awk -v n="$DRAIN_ROWS" -v ms="$ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')
  DRAIN_RATES+="$rate "
  DRAIN_ROWS_MD+="| $round | $DRAIN_ROWS | $(awk -v ms="$ms" 'BEGIN { printf "%.2f", ms / 1000 }') | $rate | $READY_MS |"$'\n'
  RELAY_RSS=$(maximum "$RELAY_RSS" "$(cat "$WORK/relay.rss")")
  stop_service "$STARTED_PID"
done

# 5: consumer catch-up over the 2 x DRAIN_ROWS events now in the drain topic.
EVENTS=$((2 * DRAIN_ROWS))
log "consumer catch-up: $EVENTS events"
start_service notification-service DATABASE_URL="$(url "${DBS[4]}")" KAFKA_TOPIC="$DRAIN_TOPIC" \
  KAFKA_GROUP_ID="bench-catchup-$RUN"
CATCHUP_READY=$READY_MS
t0=$(now_ms)
sample_rss "$STARTED_PID" "$WORK/catchup.rss" & PIDS+=($!)
until [ "$(handled "$STARTED_PORT")" -ge "$EVENTS" ]; do
  (($(now_ms) - t0 < 900000)) || die "catch-up not done within 15 min"
  sleep 0.2
done
CATCHUP_MS=$(($(now_ms) - t0))
CATCHUP_ROWS=$(sql "${DBS[4]}" 'SELECT COUNT(*) FROM notifications')
CATCHUP_RSS=$(cat "$WORK/catchup.rss")
stop_service "$STARTED_PID"
CATCHUP_RATE=$(awk -v n="$EVENTS" -v ms="$CATCHUP_MS" 'BEGIN { printf "%.0f", n * 1000 / ms }')

# 6: the prediction-service. The model alone on one thread (load, batched evaluation),
# then POST /predict and Kafka request/reply through the real broker, with the CPU each
# process spent per 1000 answers, and RSS idle and loaded.
log "prediction model on one thread (examples/model_bench)"
cargo build --release -p prediction-service --example model_bench >&2
"$BIN/examples/model_bench" >"$WORK/model.txt"
MODEL_LOAD_MS=$(python3 -c '
import re, sys
value, unit = re.search(r"load median ([0-9.]+)(ns|µs|us|ms|s)", open(sys.argv[1]).read()).groups()
print(round(float(value) * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1, "s": 1e3}[unit], 2))' "$WORK/model.txt")
MODEL_ROWS=$(awk '/^batch/ && $2 + 0 > 1 { if ($3 > best) best = $3 } END { printf "%d", best }' "$WORK/model.txt")
MODEL_TABLE=$(awk '/^batch/ { printf "| %d | %d | %s |\n", $2, $3, $(NF - 1) }' "$WORK/model.txt" | tr -d '(')
PRED_REQUESTS=bench-predict-$RUN PRED_RESULTS=bench-predict-results-$RUN
topic "$PRED_REQUESTS"
topic "$PRED_RESULTS"
start_service prediction-service KAFKA_TOPIC="$PRED_REQUESTS" KAFKA_RESULT_TOPIC="$PRED_RESULTS" \
  KAFKA_REPLY_TOPIC_PREFIX="$PRED_RESULTS" KAFKA_GROUP_ID="bench-predict-$RUN" \
  MODEL_PATH="$ROOT/models/wine-forest.onnx"
PRED_PID=$STARTED_PID PRED_PORT=$STARTED_PORT PRED_READY=$READY_MS
sleep 2
PRED_IDLE=$(rss_kib "$PRED_PID")
sample_rss "$PRED_PID" "$WORK/predict.rss" & PIDS+=($!)
# CPU ms per 1000 answers: Kafka, the prediction-service, the load generator, total.
predict_profile() {
  awk -v n="$3" -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = 0; row = "";
    split("2 3 5", f, " "); for (i = 1; i <= 3; i++) { v = (y[f[i]] - x[f[i]]) * 1000 / n; t += v; row = row sprintf(" %.0f |", v) }
    print row sprintf(" **%.0f** |", t) }'
}
predict_load() {
  local name=$1; shift
  snapshot before "$PRED_PID" 0
  load "$@" --duration "$SECONDS_PER_RUN" >"$WORK/$name.json" || die "$name failed: $(cat "$WORK/$name.json")"
  snapshot after "$PRED_PID" 0
  PREDICT_PROFILE="$(predict_profile "$before" "$after" "$(json "$WORK/$name.json" 'max(d["created"], 1)')")"
}
predict_row() {
  json "$WORK/$1.json" '"| %d | %.0f | %.2f / %.2f / %.2f / %.2f | %d |" % (d["concurrency"], d["throughput_per_second"], d["latency_ms"]["p50"], d["latency_ms"]["p90"], d["latency_ms"]["p99"], d["latency_ms"]["max"], d["errors"])'
}
REST_ROWS="" REST_BEST=0
for c in $LEVELS; do
  log "POST /predict at concurrency $c"
  predict_load "rest-$c" --target predict-http --url "http://127.0.0.1:$PRED_PORT" -c "$c"
  REST_ROWS+="$(predict_row "rest-$c")$PREDICT_PROFILE"$'\n'
  REST_BEST=$(maximum "$(json "$WORK/rest-$c.json" 'round(d["throughput_per_second"])')" "$REST_BEST")
done
REST_HALF=$(awk -v b="$REST_BEST" 'BEGIN { printf "%d", b / 2 }')
log "POST /predict at $REST_HALF/s"
predict_load rest-half --target predict-http --url "http://127.0.0.1:$PRED_PORT" -c 64 --rate "$REST_HALF"
REST_HALF_P99=$(json "$WORK/rest-half.json" 'round(d["latency_ms"]["p99"], 2)')
REST_HALF_ROW="$(json "$WORK/rest-half.json" '"| %.0f | %.2f | %.2f | %.2f | %d |" % (d["throughput_per_second"], d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["latency_ms"]["max"], d["errors"])')"
KAFKA_ROWS="" KAFKA_BEST=0
PREDICT_LEVELS=${BENCH_PREDICT_LEVELS:-64 256 1024}
for c in $PREDICT_LEVELS; do
  log "request/reply over Kafka at concurrency $c"
  predict_load "kafka-$c" --target predict-kafka --brokers "$TEST_KAFKA_BROKERS" \
    --request-topic "$PRED_REQUESTS" --reply-topic "$PRED_RESULTS" -c "$c"
  KAFKA_ROWS+="$(predict_row "kafka-$c")$PREDICT_PROFILE"$'\n'
  KAFKA_BEST=$(maximum "$(json "$WORK/kafka-$c.json" 'round(d["throughput_per_second"])')" "$KAFKA_BEST")
done
PRED_LOADED=$(cat "$WORK/predict.rss")
stop_service "$PRED_PID"

# ---------------------------------------------------------------------------------------
log "writing $OUT"
MARIADB_VERSION=$(root_sql 'SELECT VERSION()')
KAFKA_JAR=$(find "${PLATFORM_CACHE:-$HOME/.cache/platform}" -name 'kafka_2.13-*.jar' 2>/dev/null | head -1)
KAFKA_VERSION=$(basename "${KAFKA_JAR:-kafka_2.13-unknown.jar}" .jar | sed 's/kafka_2.13-//')
NOTIF_MAX=$(maximum "$NOTIF_LOADED" "$CATCHUP_RSS")
USERS_MAX_ALL=$(maximum "$USERS_MAX" "$RELAY_RSS")

# "met" or "missed" for measured value $1 against target $2; $3 is >= or <=.
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "**missed**" }'; }
# "a / b / c" from a space-separated list (stray spaces dropped).
slashed() { echo "$*" | xargs | sed 's/ / \/ /g'; }
E2E_P50=$(json "$WORK/e2e.json" 'round(d["verify"]["end_to_end_latency_ms"]["p50"], 1)')
E2E_P99=$(json "$WORK/e2e.json" 'round(d["verify"]["end_to_end_latency_ms"]["p99"], 1)')
# shellcheck disable=SC2086 # word splitting of the lists is intended
RATIO_MIN=$(minimum $RATIOS)
# shellcheck disable=SC2086
DRAIN_MIN=$(minimum $DRAIN_RATES)
IDLE_MAX=$(mib "$(maximum "$USERS_IDLE" "$NOTIF_IDLE")")
LOADED_USERS=$(mib "$USERS_MAX_ALL")
LOADED_NOTIF=$(mib "$NOTIF_MAX")
READY_MAX=$(maximum "$USERS_READY" "$NOTIF_READY" "$CATCHUP_READY")

cat >"$OUT" <<EOF
# Benchmarks

Measured by \`$COMMAND\` on $(date -u '+%Y-%m-%d %H:%M UTC'): release builds, the real
MariaDB and Kafka of \`scripts/deps.sh\`, durable commits (\`innodb_flush_log_at_trx_commit=1\`,
the MariaDB default, set for the run; the test configuration uses 2). Every figure below
comes from this one run, so ratios compare like with like. The script rewrites this file;
the analysis at the end (\`docs/benchmarks-notes.md\`) is appended as written.

## Targets

| target | measured | |
|---|---|---|
| API throughput ≥ 70 % of the limit, at each concurrency | $(slashed "$RATIOS") % (c = $(slashed "$LEVELS")) | $(verdict "$RATIO_MIN" 70 ">=") |
| end-to-end p50 ≤ 10 ms at half load | $E2E_P50 ms | $(verdict "$E2E_P50" 10 "<=") |
| end-to-end p99 ≤ 50 ms at half load | $E2E_P99 ms | $(verdict "$E2E_P99" 50 "<=") |
| outbox drain ≥ 10,000 events/s | $(slashed "$DRAIN_RATES") events/s | $(verdict "$DRAIN_MIN" 10000 ">=") |
| consumer catch-up ≥ 20,000 events/s | $CATCHUP_RATE events/s | $(verdict "$CATCHUP_RATE" 20000 ">=") |
| RSS idle ≤ 20 MiB per service | $(mib "$USERS_IDLE") / $(mib "$NOTIF_IDLE") MiB | $(verdict "$IDLE_MAX" 20 "<=") |
| RSS at maximum load ≤ 100 MiB per service | $LOADED_USERS / $LOADED_NOTIF MiB | $(verdict "$(maximum "$LOADED_USERS" "$LOADED_NOTIF")" 100 "<=") |
| ready ≤ 1 s after start | $USERS_READY / $NOTIF_READY / $CATCHUP_READY ms | $(verdict "$READY_MAX" 1000 "<=") |
| predictions: request→answer over Kafka ≥ 20,000/s | $KAFKA_BEST/s | $(verdict "$KAFKA_BEST" 20000 ">=") |
| predictions: model evaluation ≥ 500,000 rows/s on one core, batched | $MODEL_ROWS rows/s | $(verdict "$MODEL_ROWS" 500000 ">=") |
| predictions: REST p99 ≤ 5 ms at half its maximum throughput | $REST_HALF_P99 ms at $REST_HALF/s | $(verdict "$REST_HALF_P99" 5 "<=") |
| predictions: RSS ≤ 40 MiB loaded | $(mib "$PRED_LOADED") MiB | $(verdict "$(mib "$PRED_LOADED")" 40 "<=") |
| predictions: model load ≤ 100 ms | $MODEL_LOAD_MS ms | $(verdict "$MODEL_LOAD_MS" 100 "<=") |

## Machine

- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
- memory: $MEMORY_AT_START
- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (shared machine: other jobs run too)
- $(rustc --version), MariaDB $MARIADB_VERSION, Kafka $KAFKA_VERSION (KRaft, one broker)
- everything (load generator, both services, MariaDB, Kafka) on the same machine

## Registration throughput

\`platformctl load --duration $SECONDS_PER_RUN -c C\` (\`--database-url\` for the limit: the
same user + outbox transaction through \`UserStore::register\`, no HTTP, no Kafka).
Both services and the relay run during the API runs; $WARMUP_SECONDS s of warm-up load
ran first. Latencies in ms.

| concurrency | limit (tx/s) | limit p50 / p99 | API (registrations/s) | API / limit | API p50 / p90 / p99 / p99.9 / max | errors |
|---:|---:|---:|---:|---:|---:|---:|
$THROUGHPUT_ROWS
## Where the work goes

CPU milliseconds per 1000 registrations of each process (\`/proc/<pid>/stat\`; the load
generator from the shell's child times), and what MariaDB served per registration
(\`SHOW GLOBAL STATUS\`: \`Questions\` = SQL statements, \`Com_admin_commands\` = pings,
\`Innodb_data_fsyncs\`). An API row counts until the consumer has handled the run's
events, so the relay's and the consumer's share is in it. With $(nproc) cores there are
$(($(nproc) * 1000)) CPU ms a second: a total of T ms per 1000 registrations caps
throughput near $(($(nproc) * 1000000)) / T registrations a second.

| run | MariaDB | Kafka | user-service | notification-service | load generator | total | statements | pings | fsyncs |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$PROFILE_ROWS
## End-to-end latency at half load

\`platformctl load -c 64 --rate $HALF --duration $SECONDS_PER_RUN --verify\`: half of the best
API throughput above; request sent -> notification delivered (its \`delivered_at\`, read
from the notification database). Achieved rate $E2E_RATE/s; $E2E_N users verified,
exactly once: $E2E_ONCE. Its profile is the last row of the table above.

| request p50 | request p99 | end-to-end p50 | p90 | p99 | max |
|---:|---:|---:|---:|---:|---:|
| $E2E_REQ | $E2E |

## Outbox drain

$DRAIN_ROWS rows inserted into the outbox with no relay running (the state after a Kafka
outage), then one user-service started with its relay (batch ${BENCH_OUTBOX_BATCH:-500});
time from ready until the outbox table is empty (\`outbox_backlog\` then reads 0). Run
twice into one topic.

| run | rows | seconds | events/s | ready after (ms) |
|---:|---:|---:|---:|---:|
$DRAIN_ROWS_MD
## Consumer catch-up

The $EVENTS events of the drain runs already in the topic (6 partitions); a fresh
notification-service (new group, empty database, log channel) starts; time from ready
until \`events_consumed_total\` counts all of them delivered or duplicate.

| events | seconds | events/s | notifications recorded |
|---:|---:|---:|---:|
| $EVENTS | $(awk -v ms="$CATCHUP_MS" 'BEGIN { printf "%.2f", ms / 1000 }') | $CATCHUP_RATE | $CATCHUP_ROWS |

## Memory and start-up

RSS from \`/proc/<pid>/status\` (VmRSS): idle 2 s after ready; loaded = highest sample
(every 200 ms) during the API runs (user-service), the relay drain, and the API runs
plus the catch-up (notification-service). Start-up: process start -> \`/health/ready\` 200.

| service | idle RSS (MiB) | loaded RSS (MiB) | start -> ready (ms) |
|---|---:|---:|---:|
| user-service | $(mib "$USERS_IDLE") | $(mib "$USERS_MAX") (API), $(mib "$RELAY_RSS") (drain) | $USERS_READY |
| notification-service | $(mib "$NOTIF_IDLE") | $(mib "$NOTIF_MAX") | $NOTIF_READY (catch-up run: $CATCHUP_READY) |
| prediction-service | $(mib "$PRED_IDLE") | $(mib "$PRED_LOADED") (REST and Kafka runs) | $PRED_READY |

## Prediction service

The committed 100-tree wine forest (\`models/wine-forest.onnx\`). Every request is a row
of the wine data set and every answer's class is checked against scikit-learn's: a wrong
class would count as an error. Latencies in ms; CPU in ms per 1000 answers (Kafka broker
/ prediction-service / load generator / total).

The model alone, on one thread (\`cargo run --release -p prediction-service --example
model_bench\`): load (decode, build, self-check) median $MODEL_LOAD_MS ms.

| batch rows | rows/s | µs per row |
|---:|---:|---:|
$MODEL_TABLE

\`platformctl load --target predict-http -c C --duration $SECONDS_PER_RUN\` (\`POST /predict\`, one request each):

| concurrency | answers/s | p50 / p90 / p99 / max | errors | CPU Kafka | service | load gen | total |
|---:|---:|---:|---:|---:|---:|---:|---:|
$REST_ROWS
At half the best throughput (\`-c 64 --rate $REST_HALF\`):

| answers/s | p50 | p99 | max | errors |
|---:|---:|---:|---:|---:|
$REST_HALF_ROW

\`platformctl load --target predict-kafka -c C --duration $SECONDS_PER_RUN\`: each request
produced to the request topic (6 partitions) with a \`reply-to\` header, its answer read
back from the answer topic and matched by request id; latency is request sent → answer
read.

| concurrency | answers/s | p50 / p90 / p99 / max | errors | CPU Kafka | service | load gen | total |
|---:|---:|---:|---:|---:|---:|---:|---:|
$KAFKA_ROWS
EOF
if [ -f docs/benchmarks-notes.md ]; then printf '\n' >>"$OUT" && cat docs/benchmarks-notes.md >>"$OUT"; fi
log "done: $OUT"
cat "$OUT"
