#!/usr/bin/env bash
# Proves the Grafana dashboard and the alert rules against a real Prometheus:
#
#   1. starts the user-service, notification-service and prediction-service binaries
#      (target/debug) as separate processes on the real MariaDB and Kafka of
#      scripts/deps.sh, with a fresh database each and fresh topics, like the compose
#      stack runs them (the prediction-service with the committed model);
#   2. starts Prometheus (Debian's package; installed when missing) on a free loopback
#      port with a temporary data directory, with the scrape jobs of the compose
#      prometheus.yml (only each target swapped for the local process; a job whose
#      target has no local process fails the check), every second, with
#      charts/platform/files/alerts.yml loaded;
#   3. starts the compose gateway, a real Traefik (scripts/gateway.sh), in front of them,
#      registers users through it with ./generate-test-data.sh, and sends predictions
#      through it (single requests, batches and an invalid one) and over Kafka
#      (platformctl predict);
#   4. evaluates every panel target of charts/platform/dashboards/*.json through the
#      Prometheus HTTP API ($__rate_interval -> 1m, $job -> .*), polling until each
#      returns series, and fails for any query error or a panel left without series;
#   5. evaluates every alert rule expression (an error fails; no series is fine) and
#      checks that Prometheus evaluated every loaded rule without error;
#   6. checks the traefik job: its target up, and Traefik's per-service and per-router
#      request counters for the user-service counting the registrations.
#   7. checks the prediction-service job: its target up, the predictions sent counted
#      by transport and outcome, their latencies observed, model_info naming the sha256
#      of models/wine-forest.onnx, and Traefik's router counting the gateway's requests.
#   8. makes KafkaUnreachable fire for real: a second user-service, with a database of
#      its own and a broker address where nothing listens, is scraped as a second target
#      of the user-service job. It answers /health/ready 200 "degraded" naming kafka,
#      its dependency_up{dependency="kafka"} is 0 (1 on every other service), and the
#      alert fires for it after its minute, and for no other instance. (The shared
#      broker is not stopped: other tests may be using it.)
#
# Needs TEST_MYSQL_URL and TEST_KAFKA_BROKERS (eval "$(scripts/deps.sh env)"), which
# scripts/test.sh has set when it calls this. Everything it starts is stopped on exit.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"

USERS=${DASHBOARD_CHECK_USERS:-50}
WAIT_SECONDS=${DASHBOARD_CHECK_WAIT_SECONDS:-180}

LOG_TAG=dashboards

: "${TEST_MYSQL_URL:?set TEST_MYSQL_URL (eval \"\$(scripts/deps.sh env)\")}"
: "${TEST_KAFKA_BROKERS:?set TEST_KAFKA_BROKERS (eval \"\$(scripts/deps.sh env)\")}"

if ! command -v prometheus >/dev/null; then
  log "installing Prometheus from Debian"
  apt-get install -y prometheus >/dev/null || { apt-get update >/dev/null && apt-get install -y prometheus >/dev/null; } \
    || die "cannot install the prometheus package"
fi
command -v curl >/dev/null || die "curl is required"
command -v mariadb >/dev/null || die "the mariadb client is required (scripts/deps.sh installs it)"
python3 -c 'import yaml' 2>/dev/null || apt-get install -y python3-yaml >/dev/null \
  || die "cannot install python3-yaml (reads the traefik job of prometheus.yml)"
scripts/gateway.sh build >/dev/null || die "cannot build Traefik (scripts/gateway.sh build)"

BIN="$REPO_ROOT/target/debug"
for b in user-service notification-service prediction-service platformctl; do
  [ -x "$BIN/$b" ] || cargo build --workspace --bins --locked
done

WORK="$(mktemp -d)"
export GATEWAY_DIR="$WORK/gateway"
# The test account may create databases named test_*.
RUN="test_dash$(date +%s)$$"
PIDS=()
[[ $TEST_MYSQL_URL =~ ^mysql://([^:]+):([^@]+)@([^:/]+):?([0-9]*) ]] \
  || die "TEST_MYSQL_URL is not mysql://user:password@host[:port]"
DB_USER=${BASH_REMATCH[1]} DB_PASS=${BASH_REMATCH[2]} DB_HOST=${BASH_REMATCH[3]} DB_PORT=${BASH_REMATCH[4]:-3306}
sql() { mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" -p"$DB_PASS" -e "$1"; }

cleanup() {
  local pid
  scripts/gateway.sh down 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  sql "DROP DATABASE IF EXISTS ${RUN}_users; DROP DATABASE IF EXISTS ${RUN}_notifications; DROP DATABASE IF EXISTS ${RUN}_nobroker" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT


# wait_http URL WHAT [SECONDS]: polls until URL answers 2xx, each try given SECONDS (2).
wait_http() {
  local deadline=$((SECONDS + 60))
  until curl -fs --max-time "${3:-2}" -o /dev/null "$1"; do
    [ $SECONDS -lt $deadline ] || die "$2 did not come up ($1); logs in $WORK"
    sleep 0.2
  done
}

log "databases ${RUN}_users, ${RUN}_notifications, ${RUN}_nobroker; topic $RUN"
sql "CREATE DATABASE ${RUN}_users CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
     CREATE DATABASE ${RUN}_notifications CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
     CREATE DATABASE ${RUN}_nobroker CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
# The prediction-service's request topic (and its .dlq) and its result topic.
for topic in "$RUN" "${RUN}_predictions" "${RUN}_prediction_results"; do
  KAFKA_BOOTSTRAP_SERVERS=$TEST_KAFKA_BROKERS KAFKA_TOPIC=$topic "$BIN/platformctl" topics create --partitions 3 \
    >>"$WORK/topics.log" 2>&1 || { cat "$WORK/topics.log" >&2; die "cannot create the topics"; }
done

USER_PORT=$(free_port) NOTIFY_PORT=$(free_port) PREDICT_PORT=$(free_port) PROM_PORT=$(free_port)
# The user-service without a broker, and the loopback port where no broker listens.
NOBROKER_PORT=$(free_port) NO_BROKER=127.0.0.1:$(free_port)
base_url="${TEST_MYSQL_URL%/}"
start_service() {
  local name=$1 port=$2 db=$3
  shift 3
  env HTTP_ADDR="127.0.0.1:$port" DATABASE_URL="$base_url/$db" \
    KAFKA_BOOTSTRAP_SERVERS="$TEST_KAFKA_BROKERS" KAFKA_TOPIC="$RUN" \
    ADMIN_TOKEN=dashboard-check LOG_FORMAT=json RUST_LOG=warn "$@" \
    "$BIN/$name" >"$WORK/$name-$port.log" 2>&1 &
  PIDS+=("$!")
}
start_service user-service "$USER_PORT" "${RUN}_users" OUTBOX_SWEEP_INTERVAL_MS=200
start_service notification-service "$NOTIFY_PORT" "${RUN}_notifications" KAFKA_GROUP_ID="$RUN"
start_service prediction-service "$PREDICT_PORT" none KAFKA_TOPIC="${RUN}_predictions" \
  KAFKA_RESULT_TOPIC="${RUN}_prediction_results" KAFKA_REPLY_TOPIC_PREFIX="${RUN}_prediction_results" \
  KAFKA_GROUP_ID="${RUN}_predictions" MODEL_PATH="$REPO_ROOT/models/wine-forest.onnx"
wait_http "http://127.0.0.1:$USER_PORT/health/ready" user-service
wait_http "http://127.0.0.1:$NOTIFY_PORT/health/ready" notification-service
start_service user-service "$NOBROKER_PORT" "${RUN}_nobroker" KAFKA_BOOTSTRAP_SERVERS="$NO_BROKER"
wait_http "http://127.0.0.1:$PREDICT_PORT/health/ready" prediction-service
# Readiness means "can serve its requests": without its broker the user-service still
# takes registrations (into the outbox), so it is ready, degraded, naming kafka. Its
# readiness takes the broker check's 2 s deadline.
wait_http "http://127.0.0.1:$NOBROKER_PORT/health/ready" "user-service without a broker" 5
curl -fsS --max-time 5 "http://127.0.0.1:$NOBROKER_PORT/health/ready" | python3 -c '
import json, sys
body = json.load(sys.stdin)
kafka, database = body["checks"]["kafka"], body["checks"]["database"]
ok = body["status"] == "degraded" and not kafka["ok"] and not kafka["required"] and database["ok"]
sys.exit(0 if ok else f"[dashboards] expected 200 degraded naming kafka, got {body}")
' || die "the user-service without a broker does not answer 200 degraded naming kafka"
log "user-service on :$USER_PORT, notification-service on :$NOTIFY_PORT, prediction-service on :$PREDICT_PORT, user-service without a broker on :$NOBROKER_PORT"
eval "$(scripts/gateway.sh up "user-service=127.0.0.1:$USER_PORT" "notification-service=127.0.0.1:$NOTIFY_PORT" \
  "prediction-service=127.0.0.1:$PREDICT_PORT")"
log "Traefik gateway on ${GATEWAY_URL#http://}, its metrics on ${GATEWAY_API_URL#http://}"

cp charts/platform/files/alerts.yml "$WORK/alerts.yml"
# The scrape jobs of the compose prometheus.yml as they are, each target (a compose
# service name and port) swapped for the local process that plays it; a target
# without one fails the check. `+JOB=ADDR` adds a target to a job: the user-service
# without a broker.
python3 - prometheus.yml "$WORK/prometheus.yml" \
  "user-service:8000=127.0.0.1:$USER_PORT" "notification-service:8001=127.0.0.1:$NOTIFY_PORT" \
  "prediction-service:8002=127.0.0.1:$PREDICT_PORT" "traefik:8080=${GATEWAY_API_URL#http://}" \
  "localhost:9090=127.0.0.1:$PROM_PORT" "+user-service=127.0.0.1:$NOBROKER_PORT" <<'PY' \
  || die "prometheus.yml scrapes a target this check does not run"
import sys, yaml
config = yaml.safe_load(open(sys.argv[1]))
local = dict(arg.split("=", 1) for arg in sys.argv[3:] if not arg.startswith("+"))
extra = dict(arg[1:].split("=", 1) for arg in sys.argv[3:] if arg.startswith("+"))
jobs = []
for job in config["scrape_configs"]:
    for static in job["static_configs"]:
        missing = [t for t in static["targets"] if t not in local]
        if missing:
            sys.exit(f"[dashboards] job {job['job_name']}: no local process for {missing}")
        static["targets"] = [local[t] for t in static["targets"]]
    if job["job_name"] in extra:
        job["static_configs"][0]["targets"].append(extra.pop(job["job_name"]))
    jobs.append(job)
if extra:
    sys.exit(f"[dashboards] prometheus.yml has no job {sorted(extra)}")
out = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
       "rule_files": ["alerts.yml"], "scrape_configs": jobs}
yaml.safe_dump(out, open(sys.argv[2], "w"), default_flow_style=False)
print("[dashboards] scrape jobs of prometheus.yml:", ", ".join(j["job_name"] for j in jobs))
PY
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" Prometheus
log "Prometheus $(prometheus --version 2>&1 | head -1 | cut -d' ' -f3) on :$PROM_PORT"

BASE_URL="$GATEWAY_URL/api/users" ./generate-test-data.sh "$USERS" >"$WORK/generate.log" \
  || { cat "$WORK/generate.log" >&2; die "registrations failed"; }
log "$(tail -1 "$WORK/generate.log")"
# A few reads, so the notification-service serves more than /metrics.
for _ in 1 2 3; do
  curl -fsS -o /dev/null -H 'Authorization: Bearer dashboard-check' "http://127.0.0.1:$NOTIFY_PORT/notifications?limit=5"
done
# Predictions through the gateway (single requests, batches, an invalid one) and over Kafka.
WINE0='14.23,1.71,2.43,15.6,127,2.8,3.06,0.28,2.29,5.64,1.04,3.92,1065'
WINE1='12.37,0.94,1.36,10.6,88,1.98,0.57,0.28,0.42,1.95,1.05,1.82,520'
predict_http() {
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
    --data "$1" "$GATEWAY_URL/api/predictions/predict" || true
}
for _ in $(seq 20); do
  [ "$(predict_http "{\"features\":[$WINE0]}")" = 200 ] || die "POST /api/predictions/predict did not answer 200"
  [ "$(predict_http "[{\"features\":[$WINE0]},{\"features\":[$WINE1]}]")" = 200 ] || die "a prediction batch did not answer 200"
done
[ "$(predict_http '{"features":[1,2,3]}')" = 422 ] || die "invalid features did not answer 422"
"$BIN/platformctl" predict --brokers "$TEST_KAFKA_BROKERS" --request-topic "${RUN}_predictions" \
  --reply-topic "${RUN}_prediction_results" --features "$WINE0" --features "$WINE1" --timeout 30 \
  >"$WORK/predict.log" 2>&1 || { cat "$WORK/predict.log" >&2; die "platformctl predict over Kafka failed"; }
log "predictions: 40 HTTP requests (60 rows) and an invalid one through the gateway, 2 over Kafka"

python3 - "http://127.0.0.1:$PROM_PORT" "$USERS" "$WAIT_SECONDS" "$WORK/alerts.yml" \
  charts/platform/dashboards/*.json <<'PY' || die "see above; service and Prometheus logs were in $WORK"
import json, re, sys, time, urllib.parse, urllib.request

prom, users, wait, alerts, dashboards = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5:]
SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
                 "${job}": ".*", "$job": ".*"}

def query(expr):
    """(series count, error) of an instant query."""
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return 0, body.get("error", "query failed")
    result = body["data"]["result"]
    return (len(result) if isinstance(result, list) else 1), None

def substitute(expr):
    for var, value in SUBSTITUTIONS.items():
        expr = expr.replace(var, value)
    return expr

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))

targets = []
for path in dashboards:
    with open(path) as f:
        dash = json.load(f)
    for p in panels(dash["panels"]):
        for t in p.get("targets", []):
            targets.append((p.get("title", "?"), t.get("refId", "?"), substitute(t["expr"])))

# Every registration delivered, then every panel has data (lag is reported every 5 s).
deadline = time.monotonic() + wait
def delivered():
    n, _ = query(f'sum(events_consumed_total{{outcome="delivered"}}) >= {users}')
    return n > 0
while not delivered() and time.monotonic() < deadline:
    time.sleep(0.5)
if not delivered():
    print(f"[dashboards] not all {users} registrations were delivered within {wait:.0f}s")
    sys.exit(1)

results = {}
while True:
    results = {(title, ref): (expr,) + query(expr) for title, ref, expr in targets}
    pending = [k for k, (_, n, err) in results.items() if err is None and n == 0]
    if not pending or time.monotonic() >= deadline:
        break
    time.sleep(1)

failed = False
width = max(len(f"{t} [{r}]") for t, r in results)
print(f"\n{'panel [target]'.ljust(width)}  series")
for (title, ref), (expr, n, err) in results.items():
    status = str(n) if err is None else "ERROR"
    print(f"{f'{title} [{ref}]'.ljust(width)}  {status}")
    if err is not None:
        print(f"    {expr}\n    {err}")
        failed = True
    elif n == 0:
        print(f"    no series: {expr}")
        failed = True
print(f"{len(results)} panel targets evaluated")

# Alert rules: every expression is valid PromQL for this Prometheus, and the rules it
# loaded from alerts.yml evaluate without error.
with open(alerts) as f:
    text = f.read()
with urllib.request.urlopen(prom + "/api/v1/rules", timeout=10) as response:
    groups = json.load(response)["data"]["groups"]
loaded = [r for g in groups for r in g["rules"]]
print(f"\n{'alert rule'.ljust(24)}  series  health")
for rule in loaded:
    n, err = query(rule["query"])
    print(f"{rule['name'].ljust(24)}  {str(n) if err is None else 'ERROR':6}  {rule.get('health')}")
    if err is not None or rule.get("health") == "err":
        print(f"    {rule['query']}\n    {err or rule.get('lastError')}")
        failed = True
expected = len(re.findall(r"^\s*- alert:", text, re.M))
if len(loaded) != expected:
    print(f"Prometheus loaded {len(loaded)} rules, alerts.yml has {expected}")
    failed = True
sys.exit(1 if failed else 0)
PY
log "every panel target returned series and every alert rule evaluates"

# poll_prometheus TITLE NAME=EXPR...: queries Prometheus for up to 60 s (POLL_SECONDS)
# until every expression returns a series, then prints each check as
# "TITLE: NAME ok|FAILED EXPR"; fails when any never did.
poll_prometheus() {
  python3 - "http://127.0.0.1:$PROM_PORT" "${POLL_SECONDS:-60}" "$@" <<'PY'
import json, sys, time, urllib.parse, urllib.request
prom, seconds, title = sys.argv[1], float(sys.argv[2]), sys.argv[3]
checks = dict(arg.split("=", 1) for arg in sys.argv[4:])
def ok(expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return bool(json.load(response)["data"]["result"])
deadline = time.monotonic() + seconds
pending = dict(checks)
while pending and time.monotonic() < deadline:
    pending = {k: e for k, e in pending.items() if not ok(e)}
    if pending:
        time.sleep(0.5)
width = max(map(len, checks)) + 1
for name, expr in checks.items():
    print(f"{title}: {name.ljust(width)} {'FAILED' if name in pending else 'ok'}  {expr}")
sys.exit(1 if pending else 0)
PY
}

# The traefik job of the compose prometheus.yml against the real Traefik.
poll_prometheus "traefik job" \
  'target up=up{job="traefik"} == 1' \
  'service requests=sum(traefik_service_requests_total{job="traefik",service="user-service@file",code="201"}) >= '"$USERS" \
  'router requests=sum(traefik_router_requests_total{job="traefik",router="user-service@file",code="201"}) >= '"$USERS" \
  'request durations=sum(traefik_service_request_duration_seconds_count{job="traefik",service="user-service@file"}) > 0' \
  || die "the traefik scrape job does not work; logs were in $WORK"
log "the compose traefik scrape job works against a real Traefik"

# The prediction-service job counts what was sent above, and names the committed model.
job='job="prediction-service"'
sha=$(sha256sum <models/wine-forest.onnx | cut -d' ' -f1)
poll_prometheus "prediction-service job" \
  "target up=up{$job} == 1" \
  "http successes=sum(predictions_total{$job,transport=\"http\",outcome=\"success\"}) >= 60" \
  "http invalid=sum(predictions_total{$job,transport=\"http\",outcome=\"invalid\"}) >= 1" \
  "kafka successes=sum(predictions_total{$job,transport=\"kafka\",outcome=\"success\"}) >= 2" \
  "http latencies=sum(prediction_latency_seconds_count{$job,transport=\"http\"}) >= 61" \
  "model served=model_info{$job,sha256=\"$sha\"} == 1" \
  'gateway route=sum(traefik_router_requests_total{job="traefik",router="prediction-service@file",code="200"}) >= 40' \
  || die "the prediction-service metrics do not count the predictions sent; logs were in $WORK"
log "the prediction-service job counts the predictions sent and names the committed model"

# dependency_up on every service, and KafkaUnreachable firing for the user-service
# without a broker only. The alert fires a minute after its first 0 was scraped: most
# of that minute passed during the checks above.
nobroker="instance=\"127.0.0.1:$NOBROKER_PORT\""
up_of() { echo "dependency_up{job=\"$1\",instance=\"127.0.0.1:$2\",dependency=\"$3\"} == $4"; }
POLL_SECONDS=150 poll_prometheus "dependency_up and KafkaUnreachable" \
  "user-service database=$(up_of user-service "$USER_PORT" database 1)" \
  "user-service kafka=$(up_of user-service "$USER_PORT" kafka 1)" \
  "notification-service database=$(up_of notification-service "$NOTIFY_PORT" database 1)" \
  "notification-service kafka=$(up_of notification-service "$NOTIFY_PORT" kafka 1)" \
  "prediction-service model=$(up_of prediction-service "$PREDICT_PORT" model 1)" \
  "prediction-service kafka=$(up_of prediction-service "$PREDICT_PORT" kafka 1)" \
  "no broker: database=$(up_of user-service "$NOBROKER_PORT" database 1)" \
  "no broker: kafka=$(up_of user-service "$NOBROKER_PORT" kafka 0)" \
  "no broker: alert firing=ALERTS{alertname=\"KafkaUnreachable\",alertstate=\"firing\",job=\"user-service\",$nobroker}" \
  || die "dependency_up or KafkaUnreachable do not report the broker; logs were in $WORK"
poll_prometheus "KafkaUnreachable elsewhere" \
  "no other instance=absent(ALERTS{alertname=\"KafkaUnreachable\",instance!=\"127.0.0.1:$NOBROKER_PORT\"})" \
  || die "KafkaUnreachable fires for a service that reaches the broker; logs were in $WORK"
log "dependency_up reports each service's dependencies; KafkaUnreachable fires for the service without a broker only"
