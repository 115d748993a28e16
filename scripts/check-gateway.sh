#!/usr/bin/env bash
# The platform as a user meets it through the compose gateway: a real Traefik
# (scripts/gateway.sh: the version, static flags and deploy/traefik/dynamic.yml of
# docker-compose.yml) in front of the user-service, notification-service and
# prediction-service binaries, each its own process on the real MariaDB and Kafka of
# scripts/deps.sh, with compose's settings (registration limit 120 a minute, burst 20;
# the gateway a trusted proxy; the committed model).
#
# Checks, each printed as "ok" or "FAIL":
#   - POST /api/users/register/ -> 201, Location /api/users/users/{id}, which answers
#     through the gateway (admin token); directly the Location is /users/{id} and works;
#     a forged X-Forwarded-Prefix from an untrusted address is ignored
#   - errors arrive as the service's problem+json, byte for byte as sent directly
#   - /api/notifications/notifications with the admin token 200, without it 401
#   - POST /api/predictions/predict (one request and a batch) answers what the service
#     answers directly; GET /api/predictions/model names the committed model's sha256;
#     invalid features are the service's 422 problem+json, the same as directly
#   - /openapi.json behind the gateway names the prefix in `servers`; the Swagger UI of
#     each service loads its document in headless Chromium, through the gateway and
#     directly (screenshots kept under target/gateway-check/)
#   - X-Request-Id and the caller's traceparent reach the service
#   - a stopped service: the gateway answers 502/503 promptly (never hangs), its health
#     check takes the server out, and puts it back when the service returns
#   - ./generate-test-data.sh through the gateway against compose's limit: every user
#     registered, the 429s waited out and counted
#
# Needs TEST_MYSQL_URL and TEST_KAFKA_BROKERS (eval "$(scripts/deps.sh up)"). Installs
# Chromium (Debian package) and builds Traefik when missing; fails saying so when it
# cannot. Everything it starts is stopped on exit. Ends with "N passed, N failed".
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# shellcheck source=scripts/lib/common.sh
. "$REPO_ROOT/scripts/lib/common.sh"

LOG_TAG=gateway-check

: "${TEST_MYSQL_URL:?set TEST_MYSQL_URL (eval \"\$(scripts/deps.sh up)\")}"
: "${TEST_KAFKA_BROKERS:?set TEST_KAFKA_BROKERS (eval \"\$(scripts/deps.sh up)\")}"
ADMIN=gateway-check-admin
ARTIFACTS="$REPO_ROOT/target/gateway-check"

command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
command -v mariadb >/dev/null || die "the mariadb client is required (scripts/deps.sh installs it)"
if ! command -v chromium >/dev/null; then
  log "installing Chromium (Debian package chromium)"
  { apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; } \
    || die "cannot install Chromium (apt-get install chromium); the Swagger UI checks need it"
fi
command -v chromium >/dev/null || die "chromium is missing after installing it"
TRAEFIK=$(scripts/gateway.sh build) || die "cannot build Traefik (scripts/gateway.sh build)"

BIN="$REPO_ROOT/target/debug"
for b in user-service notification-service prediction-service platformctl; do
  [ -x "$BIN/$b" ] || { cargo build -p user-service -p notification-service -p prediction-service -p platformctl --bins --locked; break; }
done

WORK="$(mktemp -d)"
export GATEWAY_DIR="$WORK/gateway"
RUN="test_gw$(date +%s)$$"
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
  sql "DROP DATABASE IF EXISTS ${RUN}_users; DROP DATABASE IF EXISTS ${RUN}_notifications" 2>/dev/null || true
  if [ "${KEEP_WORK:-}" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT


wait_http() {
  local deadline=$((SECONDS + 60))
  until curl -fs --max-time 2 -o /dev/null "$1"; do
    [ $SECONDS -lt $deadline ] || die "$2 did not come up ($1); logs in $WORK (KEEP_WORK=1 keeps them)"
    sleep 0.2
  done
}

passed=0 failed=0
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; shift; [ $# -eq 0 ] || printf '        %s\n' "$@"; }
# expect NAME ACTUAL WANTED
expect() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "got:  $2" "want: $3"; fi; }

# The limits compose gives the user-service; the chart's defaults must match them,
# so one run covers both.
compose_env() { sed -n "s/^ *$1: *\"\{0,1\}\([0-9]*\)\"\{0,1\} *$/\1/p" docker-compose.yml | head -1; }
RATE=$(compose_env REGISTER_RATE_LIMIT_PER_MINUTE) BURST=$(compose_env REGISTER_RATE_BURST)
{ [ -n "$RATE" ] && [ -n "$BURST" ]; } || die "cannot read REGISTER_RATE_LIMIT_PER_MINUTE / REGISTER_RATE_BURST from docker-compose.yml"
CHART_RATE=$(sed -n 's/^ *registerRateLimitPerMinute: *\([0-9]*\).*/\1/p' charts/platform/values.yaml)
CHART_BURST=$(sed -n 's/^ *registerRateBurst: *\([0-9]*\).*/\1/p' charts/platform/values.yaml)
[ "$RATE/$BURST" = "$CHART_RATE/$CHART_BURST" ] \
  || die "compose's registration limit ($RATE/min, burst $BURST) differs from the chart's ($CHART_RATE/min, burst $CHART_BURST): test both"

log "databases ${RUN}_users, ${RUN}_notifications; topic $RUN"
sql "CREATE DATABASE ${RUN}_users CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
     CREATE DATABASE ${RUN}_notifications CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
# The prediction-service's request topic (and its .dlq) and its result topic.
for topic in "$RUN" "${RUN}_predictions" "${RUN}_prediction_results"; do
  KAFKA_BOOTSTRAP_SERVERS=$TEST_KAFKA_BROKERS KAFKA_TOPIC=$topic "$BIN/platformctl" topics create --partitions 3 \
    >>"$WORK/topics.log" 2>&1 || { cat "$WORK/topics.log" >&2; die "cannot create the topics"; }
done

# A sink for OTLP/HTTP traces: with traces on, the services' JSON logs carry the trace id
# of each request span (the http.request span at info, tower_http's "started processing
# request" at debug inside it), which shows whether the caller's traceparent arrived.
OTLP_PORT=$(free_port)
python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
' "$OTLP_PORT" >"$WORK/otlp.log" 2>&1 &
PIDS+=("$!")

USER_PORT=$(free_port) NOTIFY_PORT=$(free_port) PREDICT_PORT=$(free_port)
base_url="${TEST_MYSQL_URL%/}"
# Traefik connects from 127.0.0.1: the trusted proxy. 127.0.0.2 plays an outsider.
start_service() {
  local name=$1 port=$2 db=$3
  shift 3
  env HTTP_ADDR="127.0.0.1:$port" DATABASE_URL="$base_url/$db" \
    KAFKA_BOOTSTRAP_SERVERS="$TEST_KAFKA_BROKERS" KAFKA_TOPIC="$RUN" \
    ADMIN_TOKEN=$ADMIN LOG_FORMAT=json RUST_LOG=warn,service_kit::http=info,tower_http=debug TRUSTED_PROXIES=127.0.0.1/32 \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" SHUTDOWN_GRACE_SECONDS=2 "$@" \
    "$BIN/$name" >>"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  last_pid=$!
}
start_user() {
  start_service user-service "$USER_PORT" "${RUN}_users" \
    REGISTER_RATE_LIMIT_PER_MINUTE="$RATE" REGISTER_RATE_BURST="$BURST"
}
start_notify() {
  start_service notification-service "$NOTIFY_PORT" "${RUN}_notifications" KAFKA_GROUP_ID="$RUN"
  notify_pid=$last_pid
}
# The prediction-service with compose's model file and topic layout (no database).
start_predict() {
  start_service prediction-service "$PREDICT_PORT" none KAFKA_TOPIC="${RUN}_predictions" \
    KAFKA_RESULT_TOPIC="${RUN}_prediction_results" KAFKA_REPLY_TOPIC_PREFIX="${RUN}_prediction_results" \
    KAFKA_GROUP_ID="${RUN}_predictions" MODEL_PATH="$REPO_ROOT/models/wine-forest.onnx"
}
start_user
start_notify
start_predict
USER="http://127.0.0.1:$USER_PORT" NOTIFY="http://127.0.0.1:$NOTIFY_PORT" PREDICT="http://127.0.0.1:$PREDICT_PORT"
wait_http "$USER/health/ready" user-service
wait_http "$NOTIFY/health/ready" notification-service
wait_http "$PREDICT/health/ready" prediction-service

eval "$(scripts/gateway.sh up "user-service=127.0.0.1:$USER_PORT" "notification-service=127.0.0.1:$NOTIFY_PORT" \
  "prediction-service=127.0.0.1:$PREDICT_PORT")"
GW=$GATEWAY_URL
log "$("$TRAEFIK" version | sed -n 's/^Version: *//p' | sed 's/^/Traefik /') at $GW (API $GATEWAY_API_URL); user-service :$USER_PORT, notification-service :$NOTIFY_PORT, prediction-service :$PREDICT_PORT"

# Both servers healthy in Traefik before the checks (its first health check).
server_status() {
  curl -fsS --max-time 3 "$GATEWAY_API_URL/api/http/services/$1@file" 2>/dev/null \
    | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin).get("serverStatus", {}).values()))' 2>/dev/null || true
}

# post URL BODY [curl args...]: prints "status|location|content-type" and leaves the body in $WORK/body.
post() {
  local url=$1 body=$2
  shift 2
  curl -sS -o "$WORK/body" -D "$WORK/headers" --max-time 10 -H 'Content-Type: application/json' \
    --data "$body" "$@" "$url" -w '%{http_code}' >"$WORK/status" || true
  printf '%s|%s|%s' "$(cat "$WORK/status")" "$(header location)" "$(header content-type)"
}
header() { tr -d '\r' <"$WORK/headers" | sed -n "s/^$1: *//Ip" | tail -1; }
status_of() { curl -sS -o /dev/null --max-time 10 -w '%{http_code}' "$@" || true; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/body" "$1" 2>/dev/null || true; }
# same_errors LABEL THROUGH_URL DIRECT_URL 'WHAT|BODY'...: each body is refused with the
# same 4xx problem+json, byte for byte, through the gateway (THROUGH_URL) as directly.
same_errors() {
  local label=$1 through_url=$2 direct_url=$3 pair what body through direct
  shift 3
  for pair in "$@"; do
    what=$label${pair%%|*} body=${pair#*|}
    through=$(post "$through_url" "$body")
    cp "$WORK/body" "$WORK/body.gw"
    direct=$(post "$direct_url" "$body")
    if [ "$through" = "$direct" ] && [[ $through == 4*"|application/problem+json" ]] && cmp -s "$WORK/body" "$WORK/body.gw"; then
      ok "$what: ${through%%|*} problem+json, the same through the gateway as directly"
    else
      fail "$what: problem+json through the gateway as directly" "gateway: $through $(cat "$WORK/body.gw")" "direct:  $direct $(cat "$WORK/body")"
    fi
  done
}

log "registration and its Location"
stamp=$(date +%s%N)
result=$(post "$GW/api/users/register/" "{\"user_name\":\"Gateway User\",\"email\":\"gw-$stamp@example.com\"}")
id=$(json_field user_id)
expect "POST /api/users/register/ through the gateway: 201, Location under /api/users" \
  "$result" "201|/api/users/users/$id|application/json"
expect "GET that Location through the gateway (admin token): 200, the same user" \
  "$(status_of -H "Authorization: Bearer $ADMIN" -o "$WORK/body" "$GW/api/users/users/$id")/$(json_field user_id)" "200/$id"
result=$(post "$USER/register/" "{\"user_name\":\"Direct User\",\"email\":\"direct-$stamp@example.com\"}")
id=$(json_field user_id)
expect "POST /register/ directly: 201, Location /users/{id}" "$result" "201|/users/$id|application/json"
expect "GET that Location directly (admin token): 200" \
  "$(status_of -H "Authorization: Bearer $ADMIN" "$USER/users/$id")" 200
result=$(post "$USER/register/" "{\"user_name\":\"Forged\",\"email\":\"forged-$stamp@example.com\"}" \
  --interface 127.0.0.2 -H 'X-Forwarded-Prefix: /evil')
id=$(json_field user_id)
expect "X-Forwarded-Prefix from an untrusted address (127.0.0.2) is ignored" "$result" "201|/users/$id|application/json"
result=$(post "$GW/api/users/register/" "{\"user_name\":\"Replay\",\"email\":\"replay-$stamp@example.com\"}" -H "Idempotency-Key: gw-$stamp")
id=$(json_field user_id)
expect "a replayed Idempotency-Key through the gateway answers the same Location" \
  "$(post "$GW/api/users/register/" "{\"user_name\":\"Replay\",\"email\":\"replay-$stamp@example.com\"}" -H "Idempotency-Key: gw-$stamp")" \
  "201|/api/users/users/$id|application/json"

log "errors arrive untouched"
same_errors "" "$GW/api/users/register/" "$USER/register/" \
  'invalid fields|{"user_name":"","email":"not-an-email"}' 'malformed JSON|{"user_name":' \
  "duplicate email|{\"user_name\":\"Gateway User\",\"email\":\"gw-$stamp@example.com\"}"
through=$(curl -sS --max-time 10 -o "$WORK/body" -w '%{http_code} %{content_type}' "$GW/api/users/no/such/path" || true)
expect "an unknown path under /api/users: the service's 404 problem+json" "$through" "404 application/problem+json"

log "notifications and the admin token"
expect "GET /api/notifications/notifications with the admin token: 200" \
  "$(status_of -H "Authorization: Bearer $ADMIN" "$GW/api/notifications/notifications?limit=5")" 200
through=$(curl -sS --max-time 10 -o "$WORK/body" -w '%{http_code} %{content_type}' "$GW/api/notifications/notifications" || true)
expect "GET /api/notifications/notifications without a token: 401 problem+json" "$through" "401 application/problem+json"
expect "GET /api/notifications/notifications with a wrong token: 401" \
  "$(status_of -H 'Authorization: Bearer wrong' "$GW/api/notifications/notifications")" 401

log "predictions"
# The first row of scikit-learn's wine data (class 0) and the 60th (class 1).
WINE0='[14.23,1.71,2.43,15.6,127,2.8,3.06,0.28,2.29,5.64,1.04,3.92,1065]'
WINE1='[12.37,0.94,1.36,10.6,88,1.98,0.57,0.28,0.42,1.95,1.05,1.82,520]'
# answer_of FILE: the answer(s) without the request ids the service generates.
answer_of() {
  python3 -c '
import json, sys
def strip(a):
    return {k: v for k, v in a.items() if k != "request_id"}
body = json.load(open(sys.argv[1]))
print(json.dumps([strip(a) for a in body] if isinstance(body, list) else strip(body), sort_keys=True))' "$1" 2>/dev/null || echo "not JSON: $(head -c 200 "$1")"
}
req_id="0198c5f0-0000-7000-8000-$(printf '%012d' "$((stamp % 1000000000000))")"
single="{\"request_id\":\"$req_id\",\"features\":$WINE0}"
through=$(post "$GW/api/predictions/predict" "$single")
cp "$WORK/body" "$WORK/body.gw"
direct=$(post "$PREDICT/predict" "$single")
expect "POST /api/predictions/predict through the gateway: 200 JSON, the request id kept" \
  "$through/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_id"])' "$WORK/body.gw" 2>/dev/null)" \
  "200||application/json/$req_id"
expect "the same answer through the gateway as directly (class 0 for the first wine)" \
  "$(answer_of "$WORK/body.gw")" "$(answer_of "$WORK/body")"
expect "the answer: success, class 0" \
  "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); print(a["status"], a["prediction"])' "$WORK/body.gw" 2>/dev/null)" "success 0"
batch="[{\"features\":$WINE0},{\"features\":$WINE1}]"
through=$(post "$GW/api/predictions/predict" "$batch")
cp "$WORK/body" "$WORK/body.gw"
post "$PREDICT/predict" "$batch" >/dev/null
expect "a batch through the gateway: 200, answered in order (classes 0, 1) as directly" \
  "${through%%|*} $(python3 -c 'import json,sys; print(",".join(str(a["prediction"]) for a in json.load(open(sys.argv[1]))))' "$WORK/body.gw" 2>/dev/null) $(answer_of "$WORK/body.gw")" \
  "200 0,1 $(answer_of "$WORK/body")"
model_sha=$(sha256sum <models/wine-forest.onnx | cut -d' ' -f1)
through=$(curl -sS --max-time 10 -o "$WORK/body" -w '%{http_code}' "$GW/api/predictions/model" || true)
expect "GET /api/predictions/model through the gateway: 200, the committed model (sha256 of models/wine-forest.onnx)" \
  "$through $(json_field sha256)" "200 $model_sha"
same_errors "predict, " "$GW/api/predictions/predict" "$PREDICT/predict" \
  "12 features|{\"features\":[1,2,3,4,5,6,7,8,9,10,11,12]}" 'malformed JSON|{"features":' \
  "a string feature|{\"features\":[\"x\",1.71,2.43,15.6,127,2.8,3.06,0.28,2.29,5.64,1.04,3.92,1065]}"
expect "POST /api/predictions/predict with 12 features: 422 naming the field" \
  "$(post "$GW/api/predictions/predict" '{"features":[1,2,3,4,5,6,7,8,9,10,11,12]}' | cut -d'|' -f1) $(python3 -c 'import json,sys; print(sorted(json.load(open(sys.argv[1])).get("errors", {})))' "$WORK/body" 2>/dev/null)" \
  "422 ['features']"
expect "the prediction-service server UP in Traefik" "$(server_status prediction-service)" UP

log "request id and traceparent"
trace=$(printf '%032x' "$stamp" | tail -c 32) rid="gw-request-$stamp"
curl -sS -o /dev/null -D "$WORK/headers" --max-time 10 -H 'Content-Type: application/json' \
  -H "X-Request-Id: $rid" -H "traceparent: 00-$trace-00f067aa0ba902b7-01" \
  --data "{\"user_name\":\"Traced\",\"email\":\"traced-$stamp@example.com\"}" "$GW/api/users/register/" || true
expect "X-Request-Id reaches the service and comes back" "$(header x-request-id)" "$rid"
found=""
deadline=$((SECONDS + 10))
while [ -z "$found" ] && [ $SECONDS -lt $deadline ]; do
  found=$(grep -F "\"$rid\"" "$WORK/user-service.log" | grep -F "\"$trace\"" | head -1 || true)
  [ -n "$found" ] || sleep 0.2
done
if [ -n "$found" ]; then ok "the caller's traceparent reaches the service (its request span has trace id $trace)"
else fail "the caller's traceparent reaches the service" "no user-service log line with request id $rid and trace id $trace"; fi

log "API docs: servers and the Swagger UI in Chromium"
mkdir -p "$ARTIFACTS"
servers() { curl -fsS --max-time 10 "$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("servers")))' 2>/dev/null || echo error; }
for route in user-service=users notification-service=notifications prediction-service=predictions; do
  prefix=/api/${route#*=}
  expect "${route%=*} /openapi.json through the gateway: servers $prefix" \
    "$(servers "$GW$prefix/openapi.json")" "[{\"url\": \"$prefix\"}]"
done
expect "user-service /openapi.json directly: no servers (the document's own origin)" "$(servers "$USER/openapi.json")" null
expect "/api/users/docs redirects within the prefix" \
  "$(curl -sS -o /dev/null --max-time 10 -w '%{http_code} %{redirect_url}' "$GW/api/users/docs" || true)" "303 $GW/api/users/docs/"

chromium_run() {
  local profile
  profile=$(mktemp -d "$WORK/chromium.XXXXXX")
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --user-data-dir="$profile" --virtual-time-budget=15000 \
    --window-size=1280,1400 "$@" 2>>"$WORK/chromium.log"
}
# swagger NAME URL TITLE PATH: the UI at URL renders TITLE's document with operation PATH.
swagger() {
  local name=$1 url=$2 title=$3 path=$4 dom shot="$ARTIFACTS/$1.png"
  dom=$(chromium_run --dump-dom "$url" || true)
  printf '%s\n' "$dom" >"$ARTIFACTS/$name.html"
  rm -f "$shot"
  chromium_run --screenshot="$shot" "$url" >/dev/null || true
  if grep -q 'Failed to load API definition' <<<"$dom"; then
    fail "Swagger UI $name: loads its OpenAPI document" "the page says: Failed to load API definition"
  elif grep -qE "class=\"title\"[^>]*>$title<" <<<"$dom" && grep -qF "data-path=\"$path\"" <<<"$dom" \
    && [ "$(head -c 4 "$shot" 2>/dev/null | tail -c 3)" = PNG ]; then
    ok "Swagger UI $name: shows $title and $path (screenshot ${shot#"$REPO_ROOT"/})"
  else
    fail "Swagger UI $name: loads its OpenAPI document" "no title '$title' / operation '$path' in the page, or no screenshot; DOM: $(head -c 300 <<<"$dom")"
  fi
}
swagger user-service-via-gateway "$GW/api/users/docs/" user-service /register/
swagger user-service-direct "$USER/docs/" user-service /register/
swagger notification-service-via-gateway "$GW/api/notifications/docs/" notification-service /notifications
swagger notification-service-direct "$NOTIFY/docs/" notification-service /notifications
swagger prediction-service-via-gateway "$GW/api/predictions/docs/" prediction-service /predict

log "health checks: the notification-service stopped and started again"
# wait_gateway WANT_STATUS WANT_SERVER SECONDS: polls until the gateway answers WANT_STATUS
# and Traefik reports the server WANT_SERVER; fails on any answer slower than 5 s.
wait_gateway() {
  local want=$1 server=$2 deadline=$((SECONDS + $3)) out code took seen=""
  while :; do
    out=$(curl -sS -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' "$GW/api/notifications/health/live" 2>/dev/null || true)
    code=${out%% *} took=${out#* }
    [[ " $seen " == *" $code "* ]] || seen="$seen $code"
    if [ "$code" = 000 ]; then echo "no answer within 5 s (the gateway hung or refused); seen:$seen"; return 1; fi
    if [ "$code" = "$want" ] && [ "$(server_status notification-service)" = "$server" ]; then
      echo "answers $code after ${took}s, server $server; seen:$seen"; return 0
    fi
    [ $SECONDS -lt "$deadline" ] || { echo "still $code, server $(server_status notification-service) after $3s; seen:$seen"; return 1; }
    sleep 0.2
  done
}
expect "before: the notification-service server UP in Traefik" "$(wait_gateway 200 UP 30 >/dev/null && echo UP)" UP
log_lines_before_stop=$(wc -l <"$GATEWAY_LOG")
kill "$notify_pid"
wait "$notify_pid" 2>/dev/null || true
# Until the health check runs the gateway still tries the server: 502 at once.
code=$(curl -sS -o /dev/null --max-time 5 -w '%{http_code}' "$GW/api/notifications/health/live" 2>/dev/null || true)
if [ "$code" = 502 ] || [ "$code" = 503 ]; then ok "service stopped: the gateway answers $code at once"
else fail "service stopped: the gateway answers 502/503 at once" "got $code"; fi
if msg=$(wait_gateway 503 DOWN 40); then ok "service stopped: health check takes it out, the gateway answers 503 ($msg)"
else fail "service stopped: health check takes it out, the gateway answers 503" "$msg"; fi
start_notify
if msg=$(wait_gateway 200 UP 60); then ok "service back: health check puts it back, 200 again ($msg)"
else fail "service back: health check puts it back" "$msg"; fi

log "generate-test-data.sh through the gateway, with compose's limit ($RATE/min, burst $BURST)"
for count in 40 $((BURST * 2 + 10)); do
  if out=$(BASE_URL="$GW/api/users" ./generate-test-data.sh "$count" 2>&1); then
    summary=$(grep '^Summary:' <<<"$out")
    waits=$(sed -n 's/.*rate-limit waits (429) \([0-9]*\).*/\1/p' <<<"$summary")
    if [[ $summary == "Summary: created $count, duplicates (409) 0, failed 0,"* ]] && [ "${waits:-0}" -gt 0 ]; then
      ok "./generate-test-data.sh $count: $summary"
    else
      fail "./generate-test-data.sh $count: every user created, 429s waited out and counted" "$summary"
    fi
  else
    fail "./generate-test-data.sh $count exits 0" "$(tail -5 <<<"$out")"
  fi
done

# Errors Traefik logged while both services ran (the stop above may log some). Its
# console log is coloured (the compose flags leave colour on): strip the escapes. One
# error is expected: the Go module has no built web UI (Traefik's release builds it
# with Node), so the dashboard page is missing while its API works.
errors=$(head -n "$log_lines_before_stop" "$GATEWAY_LOG" | sed 's/\x1b\[[0-9;]*m//g' | grep -E '^[^ ]+ (ERR|FTL|PNC) ' \
  | grep -vF 'Error appending dashboard to API router error="parsing index template: template: pattern matches no files:' || true)
if [ -z "$errors" ]; then ok "Traefik logged no errors while the services ran"
else fail "Traefik logged no errors while the services ran" "$(head -3 <<<"$errors")"; fi

printf '\ngateway: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
