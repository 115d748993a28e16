#!/usr/bin/env bash
# Soak run: the platform under steady load for half an hour against the real MariaDB and
# Kafka of scripts/deps.sh with release builds; writes docs/soak.md, docs/soak.png and the
# raw samples docs/soak-samples.csv. A benchmark, not part of scripts/test.sh.
#
#   scripts/soak.sh
#
#   SOAK_MINUTES      minutes of steady load (default 30)
#   SOAK_INTERVAL     seconds between samples (default 10)
#   SOAK_MAX_SECONDS  seconds of the maximum-rate run at concurrency 16 (default 20)
#   SOAK_KEYED_RATE   registrations/s sent alongside with an Idempotency-Key (default 2)
#   SOAK_OUT_DIR      where soak.md, soak.png and soak-samples.csv go (default docs)
#
# What it does, in one run:
#   1. a user-service and a notification-service (own databases, topic and group) on a
#      topic that keeps messages briefly (retention.ms=300000, segment.ms=60000), so
#      that the notification-service may keep its dedupe record for only 12 minutes
#      (NOTIFICATIONS_RETENTION=12m) and the user-service its idempotency keys for 10
#      (IDEMPOTENCY_KEY_TTL=10m), both swept every 30 s: within the run the tables must
#      stop growing;
#   2. the maximum registration rate: `platformctl load -c 16` for SOAK_MAX_SECONDS;
#   3. SOAK_MINUTES of `platformctl load --rate <half of it>`, plus a trickle of
#      registrations with an Idempotency-Key (`platformctl load` sends none), every
#      20th of them retried with its key (must replay the 201);
#   4. every SOAK_INTERVAL seconds: RSS and open file descriptors of each service,
#      registration p50/p99 over the interval (from the deltas of the user-service's
#      http_request_duration_seconds histogram), outbox, notifications and
#      idempotency_keys row counts, and the consumer lag (sum of kafka_consumer_lag);
#   5. at the end: waits until every registered user is notified, counts the users never
#      notified and the requests answered other than 201, and writes the report with
#      least-squares slopes and verdicts, all computed.
#
# Lost notifications are counted exactly although the notification-service deletes its
# rows after 12 minutes: every sample copies the new rows' (id, user_id) into an audit
# table of its own database (a primary-key range read with an overlap, INSERT IGNORE),
# and the end compares the users table with that copy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/common.sh
. scripts/lib/common.sh

# The command as run, with the settings given (for the report).
COMMAND="scripts/soak.sh"
for setting in SOAK_INTERVAL SOAK_MAX_SECONDS SOAK_KEYED_RATE SOAK_MINUTES; do
  [ -z "${!setting:-}" ] || COMMAND="$setting=${!setting} $COMMAND"
done
SOAK_MINUTES=${SOAK_MINUTES:-30}
INTERVAL=${SOAK_INTERVAL:-10}
MAX_SECONDS=${SOAK_MAX_SECONDS:-20}
KEYED_RATE=${SOAK_KEYED_RATE:-2}
OUT_DIR=${SOAK_OUT_DIR:-docs}
TOPIC_RETENTION_MS=300000
TOPIC_SEGMENT_MS=60000
NOTIFICATIONS_RETENTION=12m
IDEMPOTENCY_TTL=10m
HOUSEKEEPING_INTERVAL=30s
MATPLOTLIB=matplotlib==3.11.2
RUN=$(date +%s)-$$
WORK=$(mktemp -d)
TOKEN=soak-$RUN
TOPIC=soak-$RUN
PIDS=()
DBS=()
TOPIC_CREATED=""

LOG_TAG=soak LOG_FD=2 DIE_WORD=ERROR

for setting in SOAK_MINUTES:$SOAK_MINUTES SOAK_INTERVAL:$INTERVAL SOAK_MAX_SECONDS:$MAX_SECONDS SOAK_KEYED_RATE:$KEYED_RATE; do
  [[ ${setting#*:} =~ ^[1-9][0-9]*$ ]] || die "${setting%%:*} must be a positive whole number, not '${setting#*:}'"
done
for tool in cargo curl mariadb python3 java awk; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh up installs mariadb and java)"
done

eval "$(scripts/deps.sh up)"
if [ -z "${TEST_MYSQL_URL:-}" ] || [ -z "${TEST_KAFKA_BROKERS:-}" ]; then
  die "scripts/deps.sh up printed no TEST_MYSQL_URL / TEST_KAFKA_BROKERS"
fi
KAFKA_LIBS=$PLATFORM_CACHE/kafka-${KAFKA_VERSION:-4.1.1}/libs
KAFKA_DATA_DIR=${KAFKA_DATA_DIR:-/tmp/platform-kafka}
[ -d "$KAFKA_LIBS" ] || die "Kafka's jars are not in $KAFKA_LIBS (scripts/deps.sh up installs them)"

root_sql() { mariadb --protocol=socket --socket=/run/mysqld/mysqld.sock -uroot -N -B -e "$1"; }
# A Kafka command-line tool class, quiet and bounded in time, as scripts/deps.sh runs them.
kafka_tool() {
  timeout 120 java -cp "$KAFKA_LIBS/*" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$KAFKA_DATA_DIR/tools-log4j2.properties" "$@"
}

USERS_DB=test_soak_users_$$
NOTIF_DB=test_soak_notif_$$
AUDIT_DB=test_soak_audit_$$

cleanup() {
  local pid db
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for db in "${DBS[@]}"; do root_sql "DROP DATABASE IF EXISTS $db" || true; done
  if [ -n "$TOPIC_CREATED" ]; then
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TEST_KAFKA_BROKERS" \
      --delete --topic "$TOPIC" >/dev/null 2>&1 || true
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TEST_KAFKA_BROKERS" \
      --delete --topic "$TOPIC.dlq" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "release build"
cargo build --release -p user-service -p notification-service -p platformctl >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
# What was built: the commit, and the sources of the three binaries that differ from it.
COMMIT=$(git rev-parse --short HEAD)
DIRTY=$(git status --porcelain --untracked-files=no -- crates user-service notification-service platformctl \
  | awk '{ print $NF }' | xargs)

# The chart's Python: matplotlib in a venv of its own, named after the pinned version.
VENV="$PLATFORM_CACHE/venv-soak-$(printf '%s\n' "$MATPLOTLIB" | sha256sum | cut -c1-12)"
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  log "installing $MATPLOTLIB into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "$MATPLOTLIB" || die "cannot install $MATPLOTLIB from PyPI"
fi

START_UTC=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
MEMORY_AT_START=$(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available at the start"}')
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
FLUSH=$(root_sql 'SELECT @@GLOBAL.innodb_flush_log_at_trx_commit')

for db in "$USERS_DB" "$NOTIF_DB" "$AUDIT_DB"; do
  root_sql "CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  DBS+=("$db")
done
root_sql "CREATE TABLE $AUDIT_DB.notified (id BIGINT NOT NULL PRIMARY KEY,
  user_id CHAR(36) CHARACTER SET ascii NOT NULL, KEY notified_user (user_id)) ENGINE = InnoDB"

log "topic $TOPIC: retention.ms=$TOPIC_RETENTION_MS segment.ms=$TOPIC_SEGMENT_MS"
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TEST_KAFKA_BROKERS" --create \
  --topic "$TOPIC" --partitions 6 --replication-factor 1 \
  --config "retention.ms=$TOPIC_RETENTION_MS" --config "segment.ms=$TOPIC_SEGMENT_MS" >&2 \
  || die "cannot create topic $TOPIC"
TOPIC_CREATED=yes
# The dead-letter topic (the events topic exists and is left as it is).
"$BIN/platformctl" topics create --bootstrap-servers "$TEST_KAFKA_BROKERS" --kafka-topic "$TOPIC" >/dev/null \
  || die "platformctl topics create failed for $TOPIC.dlq"
TOPIC_CONFIG=$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$TEST_KAFKA_BROKERS" \
  --describe --topic "$TOPIC" 2>/dev/null | grep -o 'retention.ms=[0-9]*\|segment.ms=[0-9]*' | sort -u | xargs || true)
[ "$TOPIC_CONFIG" = "retention.ms=$TOPIC_RETENTION_MS segment.ms=$TOPIC_SEGMENT_MS" ] \
  || die "topic $TOPIC has '$TOPIC_CONFIG', not the retention and segment time asked for"

now_ms() { date +%s%3N; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$@"; }
metric() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" 'index($0, s) == 1 { sum += $NF } END { printf "%d", sum }'
}

# Starts a service binary; sets STARTED_PID, STARTED_PORT.
start_service() {
  local name=$1; shift
  local port; port=$(free_port)
  local t0; t0=$(now_ms)
  env HTTP_ADDR="127.0.0.1:$port" ADMIN_TOKEN="$TOKEN" KAFKA_BOOTSTRAP_SERVERS="$TEST_KAFKA_BROKERS" \
    KAFKA_TOPIC="$TOPIC" RUST_LOG="${SOAK_RUST_LOG:-info}" LOG_FORMAT=json "$@" "$BIN/$name" \
    >"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_PORT=$port
  until curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready"; do
    kill -0 "$STARTED_PID" 2>/dev/null || die "$name exited; log: $(tail -5 "$WORK/$name.log")"
    (($(now_ms) - t0 < 60000)) || die "$name not ready within 60 s"
    sleep 0.05
  done
}

log "starting services"
start_service user-service DATABASE_URL="$TEST_MYSQL_URL/$USERS_DB" \
  IDEMPOTENCY_KEY_TTL="$IDEMPOTENCY_TTL" HOUSEKEEPING_INTERVAL="$HOUSEKEEPING_INTERVAL"
USERS_PID=$STARTED_PID USERS_PORT=$STARTED_PORT
start_service notification-service DATABASE_URL="$TEST_MYSQL_URL/$NOTIF_DB" KAFKA_GROUP_ID="soak-$RUN" \
  NOTIFICATIONS_RETENTION="$NOTIFICATIONS_RETENTION" HOUSEKEEPING_INTERVAL="$HOUSEKEEPING_INTERVAL"
NOTIF_PID=$STARTED_PID NOTIF_PORT=$STARTED_PORT
# Whether the binaries know the housekeeping settings (clap ignores variables it does
# not define, so an older binary starts and simply keeps every row).
knows() { "$BIN/$1" --help | grep -c "\[env: $2=" >/dev/null; }
HOUSEKEEPING_NOTE=""
for pair in notification-service:NOTIFICATIONS_RETENTION notification-service:HOUSEKEEPING_INTERVAL \
  user-service:IDEMPOTENCY_KEY_TTL user-service:HOUSEKEEPING_INTERVAL; do
  knows "${pair%%:*}" "${pair#*:}" || HOUSEKEEPING_NOTE+="${pair%%:*} has no ${pair#*:}; "
done
[ -z "$HOUSEKEEPING_NOTE" ] || log "WARNING: ${HOUSEKEEPING_NOTE}its tables will not be bounded"

# ---- sampling -------------------------------------------------------------------------
CSV=$WORK/samples.csv
echo "time_utc,t_s,phase,users_rss_kib,users_fds,notif_rss_kib,notif_fds,requests_per_s,p50_ms,p99_ms,outbox_rows,notifications_rows,idempotency_rows,consumer_lag,registered_total,delivered_total,kafka_pid,mariadb_pid" >"$CSV"
echo warmup >"$WORK/phase"
DELIVERED_SERIES='events_consumed_total{event_type="com.platform.user.registered.v1",outcome="delivered"}'
REGISTER='http_request_duration_seconds_bucket{method="POST",route="/register/",'
count() { root_sql "SELECT COUNT(*) FROM $1" 2>/dev/null || echo ""; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo ""; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# Copies the (id, user_id) of notifications recorded since the last copy into the audit
# table, before housekeeping deletes them. Ids are assigned before commit, so a row can
# appear below the highest id copied: each copy re-reads the last 5000 ids.
mirror() {
  root_sql "INSERT IGNORE INTO $AUDIT_DB.notified (id, user_id) SELECT id, user_id
    FROM $NOTIF_DB.notifications WHERE id > (SELECT COALESCE(MAX(id), 0) - 5000 FROM $AUDIT_DB.notified)"
}
unnotified() {
  root_sql "SELECT COUNT(*) FROM $USERS_DB.users u
    WHERE NOT EXISTS (SELECT 1 FROM $AUDIT_DB.notified n WHERE n.user_id = u.user_id)"
}
# "count p50 p99" of POST /register/ over an interval from two snapshots of the
# cumulative histogram ("le count" lines), interpolated within a bucket as
# Prometheus' histogram_quantile does.
interval_quantiles() {
  awk -v secs="$3" 'FNR == NR { before[$1] = $2; next }
    { le[++n] = $1; c[n] = $2 - before[$1] }
    END {
      total = c[n]; if (total <= 0) { printf "0,,"; exit }
      printf "%.1f", total / secs
      split("0.5 0.99", qs, " ")
      for (k = 1; k <= 2; k++) {
        rank = qs[k] * total; prev_le = 0; prev_c = 0; v = ""
        for (i = 1; i <= n; i++) {
          if (c[i] >= rank) {
            if (le[i] == "+Inf") { v = prev_le } else { v = prev_le + (le[i] - prev_le) * (rank - prev_c) / (c[i] - prev_c) }
            break
          }
          prev_le = le[i]; prev_c = c[i]
        }
        printf ",%.2f", v * 1000
      }
    }' "$1" "$2"
}
histogram() {
  curl -sf "http://127.0.0.1:$USERS_PORT/metrics" | awk -v s="$REGISTER" 'index($0, s) == 1 {
    match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $NF }'
}
sampler() {
  set +e # a sample with a missing figure is written as it is
  local t0 tick=0 now phase line
  t0=$(date +%s)
  histogram >"$WORK/hist.prev" || true
  while :; do
    tick=$((tick + 1))
    now=$((t0 + tick * INTERVAL))
    sleep "$((now - $(date +%s)))" 2>/dev/null || true
    phase=$(cat "$WORK/phase")
    histogram >"$WORK/hist.now" || true
    mirror || true
    line="$(date -u +%FT%TZ),$((now - t0)),$phase"
    line+=",$(rss_kib "$USERS_PID"),$(fds "$USERS_PID"),$(rss_kib "$NOTIF_PID"),$(fds "$NOTIF_PID")"
    line+=",$(interval_quantiles "$WORK/hist.prev" "$WORK/hist.now" "$INTERVAL")"
    line+=",$(count "$USERS_DB.outbox"),$(count "$NOTIF_DB.notifications"),$(count "$USERS_DB.idempotency_keys")"
    line+=",$(metric "$NOTIF_PORT" 'kafka_consumer_lag{'),$(metric "$USERS_PORT" 'users_registered_total')"
    line+=",$(metric "$NOTIF_PORT" "$DELIVERED_SERIES")"
    line+=",$(cat "$KAFKA_DATA_DIR/kafka.pid" 2>/dev/null),$(cat /run/mysqld/mysqld.pid 2>/dev/null)"
    echo "$line" >>"$CSV"
    mv "$WORK/hist.now" "$WORK/hist.prev"
  done
}
sampler &
SAMPLER_PID=$!
PIDS+=("$SAMPLER_PID")

load() { "$BIN/platformctl" load --json "$@"; }

# ---- 1. the maximum rate ---------------------------------------------------------------
log "maximum rate: $MAX_SECONDS s of POST /register/ at concurrency 16"
echo max >"$WORK/phase"
load --url "http://127.0.0.1:$USERS_PORT" -c 16 --duration "$MAX_SECONDS" >"$WORK/max.json" || true
MAX_RATE=$(json "$WORK/max.json" 'round(d["throughput_per_second"], 1)')
MAX_ERRORS=$(json "$WORK/max.json" 'd["errors"]')
RATE=$(awk -v m="$MAX_RATE" 'BEGIN { printf "%d", m / 2 }')
((RATE > 0)) || die "maximum rate measured as $MAX_RATE/s"
log "maximum $MAX_RATE registrations/s ($MAX_ERRORS errors); the soak runs at $RATE/s"
echo settle >"$WORK/phase"
t0=$(now_ms)
until [ "$(metric "$NOTIF_PORT" 'kafka_consumer_lag{')" = 0 ] \
  && [ "$(metric "$USERS_PORT" 'outbox_backlog ')" = 0 ]; do
  (($(now_ms) - t0 < 300000)) || die "the maximum-rate run's events were not consumed within 5 min"
  sleep 1
done

# ---- 2. the soak -----------------------------------------------------------------------
SOAK_SECONDS=$((SOAK_MINUTES * 60))
log "soak: $SOAK_MINUTES min at $RATE registrations/s (+ $KEYED_RATE/s with an Idempotency-Key)"
echo soak >"$WORK/phase"
load --url "http://127.0.0.1:$USERS_PORT" -c 64 --rate "$RATE" --duration "$SOAK_SECONDS" >"$WORK/soak.json" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
# Registrations with an Idempotency-Key, KEYED_RATE a second; every 20th is sent twice
# with the same key and must be answered 201 both times. One status per line.
keyed() {
  local i=0 key code
  while kill -0 "$LOAD_PID" 2>/dev/null; do
    i=$((i + 1))
    key=soak-$RUN-$i
    for _ in $(seq $((i % 20 == 0 ? 2 : 1))); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
        -H 'Content-Type: application/json' -H "Idempotency-Key: $key" \
        -d "{\"user_name\":\"Soak keyed $i\",\"email\":\"soak-keyed-$RUN-$i@example.com\"}" \
        "http://127.0.0.1:$USERS_PORT/register/") || true
      echo "$code" >>"$WORK/keyed.codes"
    done
    sleep "$(awk -v r="$KEYED_RATE" 'BEGIN { printf "%.3f", 1 / r }')"
  done
}
touch "$WORK/keyed.codes"
keyed &
KEYED_PID=$!
PIDS+=("$KEYED_PID")
while kill -0 "$LOAD_PID" 2>/dev/null; do
  kill -0 "$USERS_PID" 2>/dev/null || die "user-service died during the soak; log: $(tail -5 "$WORK/user-service.log")"
  kill -0 "$NOTIF_PID" 2>/dev/null || die "notification-service died during the soak; log: $(tail -5 "$WORK/notification-service.log")"
  sleep 5
done
wait "$LOAD_PID" || true
wait "$KEYED_PID" || true
[ -s "$WORK/soak.json" ] || die "the load generator wrote no report"

# ---- 3. every user notified? -------------------------------------------------------------
echo drain >"$WORK/phase"
log "waiting until every registered user is notified"
t0=$(now_ms)
while :; do
  mirror
  LEFT=$(unnotified)
  [ "$LEFT" = 0 ] && break
  if (($(now_ms) - t0 > 600000)); then log "$LEFT users still not notified after 10 min"; break; fi
  sleep 2
done
DRAIN_MS=$(($(now_ms) - t0))
sleep "$INTERVAL" # one more sample after the drain
mirror
LOST=$(unnotified)
USERS_TOTAL=$(count "$USERS_DB.users")
NOTIFIED=$(count "(SELECT DISTINCT user_id FROM $AUDIT_DB.notified) d")
DELIVERED=$(metric "$NOTIF_PORT" "$DELIVERED_SERIES")
DUPLICATES=$(metric "$NOTIF_PORT" 'events_consumed_total{event_type="com.platform.user.registered.v1",outcome="duplicate"}')
DEAD=$(metric "$NOTIF_PORT" 'events_consumed_total{event_type="com.platform.user.registered.v1",outcome="dead_lettered"}')
SOAK_CREATED=$(json "$WORK/soak.json" 'd["created"]')
SOAK_ERRORS=$(json "$WORK/soak.json" 'd["errors"]')
SOAK_BY_STATUS=$(json "$WORK/soak.json" '", ".join(f"{k}: {v}" for k, v in d["errors_by_status"].items()) or "none"')
SOAK_ACHIEVED=$(json "$WORK/soak.json" 'round(d["throughput_per_second"], 1)')
SOAK_LAT=$(json "$WORK/soak.json" '"%.2f / %.2f / %.2f / %.2f" % tuple(d["latency_ms"][k] for k in ("p50","p99","p999","max"))')
KEYED_SENT=$(wc -l <"$WORK/keyed.codes")
KEYED_ERRORS=$(grep -vcx 201 "$WORK/keyed.codes" || true)
ERRORS=$((MAX_ERRORS + SOAK_ERRORS + KEYED_ERRORS))
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
USERS_LOG_ERRORS=$(grep -c '"level":"ERROR"' "$WORK/user-service.log" || true)
NOTIF_LOG_ERRORS=$(grep -c '"level":"ERROR"' "$WORK/notification-service.log" || true)
# "runs rows" of the housekeeping log lines (one per run that deleted rows), per job.
deleted_rows() {
  python3 -c 'import json, sys
runs, rows = 0, 0
for line in open(sys.argv[1], errors="replace"):
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("message") == "expired rows deleted" and d.get("job") == sys.argv[2]:
        runs += 1; rows += int(d.get("deleted", 0))
print(runs, rows)' "$@"
}
log_jobs() { python3 -c 'import json, sys
jobs = set()
for line in open(sys.argv[1], errors="replace"):
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("message") == "expired rows deleted": jobs.add(d.get("job"))
print(" ".join(sorted(j for j in jobs if j)))' "$1"; }
HOUSEKEEPING_MD=""
for name in user-service notification-service; do
  for job in $(log_jobs "$WORK/$name.log"); do
    read -r runs rows < <(deleted_rows "$WORK/$name.log" "$job")
    HOUSEKEEPING_MD+="| $name | \`$job\` | $runs | $rows |"$'\n'
  done
done
[ -n "$HOUSEKEEPING_MD" ] || HOUSEKEEPING_MD="| (none) | no \"expired rows deleted\" line in either log | 0 | 0 |"$'\n'
HOUSEKEEPING_WARNINGS=$(cat "$WORK/user-service.log" "$WORK/notification-service.log" | grep -c '"housekeeping failed' || true)
RETENTION_LINE=$(grep -h 'older than the window are deleted\|every notification is kept\|retention unknown' "$WORK/notification-service.log" \
  | python3 -c 'import json, sys
for line in sys.stdin:
    d = json.loads(line); print(d.get("message"), "(window " + d["window"] + ")" if "window" in d else ""); break' || true)
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true

# ---- 4. the report ---------------------------------------------------------------------
mkdir -p "$OUT_DIR"
cp "$CSV" "$OUT_DIR/soak-samples.csv"
log "analysing $(($(wc -l <"$CSV") - 1)) samples"
cat >"$WORK/analyse.py" <<'EOF'
"""Slopes, verdicts, the per-minute table and the chart of a soak run's samples."""
import csv, shlex, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

path, png, rate, keyed_rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rows = list(csv.DictReader(open(path)))
def num(r, k):
    v = r[k]
    return float(v) if v not in ("", None) else None
soak = [r for r in rows if r["phase"] == "soak"]
t0 = float(soak[0]["t_s"])
def minute(r): return (float(r["t_s"]) - t0) / 60

def slope(rs, key, scale=1.0):
    pts = [(minute(r), num(r, key) * scale) for r in rs if num(r, key) is not None]
    if len(pts) < 2: return float("nan"), float("nan")
    n = len(pts); mx = sum(p[0] for p in pts) / n; my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    b = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else float("nan")
    return b, my

minutes = minute(soak[-1])
steady = [r for r in soak if minute(r) >= minutes / 3]        # after the first third
last = [r for r in soak if minute(r) >= 2 * minutes / 3]       # the last third
out = {}
def verdict(ok): return "met" if ok else "**missed**"
for name, key in (("USERS", "users_rss_kib"), ("NOTIF", "notif_rss_kib")):
    b_all, _ = slope(soak, key, 1 / 1024)
    b, mean = slope(steady, key, 1 / 1024)
    window = minute(steady[-1]) - minute(steady[0])
    out[f"{name}_RSS_SLOPE_ALL"] = f"{b_all:+.3f}"
    out[f"{name}_RSS_SLOPE"] = f"{b:+.3f}"
    out[f"{name}_RSS_MEAN"] = f"{mean:.1f}"
    out[f"{name}_RSS_MAX"] = f"{max(num(r, key) for r in soak) / 1024:.1f}"
    out[f"{name}_RSS_OK"] = verdict(abs(b) * window <= 0.10 * mean)
    out[f"{name}_FDS"] = f"{min(int(num(r, key.replace('rss_kib', 'fds'))) for r in soak)}-{max(int(num(r, key.replace('rss_kib', 'fds'))) for r in soak)}"
b_all, _ = slope(soak, "p99_ms")
b, mean = slope(steady, "p99_ms")
window = minute(steady[-1]) - minute(steady[0])
out.update(P99_SLOPE_ALL=f"{b_all:+.3f}", P99_SLOPE=f"{b:+.3f}", P99_MEAN=f"{mean:.1f}",
           P99_OK=verdict(abs(b) * window <= 0.25 * mean))
_, p50 = slope(steady, "p50_ms")
out["P50_MEAN"] = f"{p50:.1f}"
bounded = True
for name, key, per_min in (("NOTIFICATIONS", "notifications_rows", rate * 60),
                           ("IDEMPOTENCY", "idempotency_rows", keyed_rate * 60),
                           ("OUTBOX", "outbox_rows", rate * 60)):
    b, _ = slope(last, key)
    values = [num(r, key) for r in soak if num(r, key) is not None]
    peak = max(values); peak_at = minute(next(r for r in soak if num(r, key) == peak))
    flat = abs(b) <= 0.10 * per_min
    out[f"{name}_SLOPE"] = f"{b:+.0f}"
    out[f"{name}_INSERTS"] = f"{per_min:.0f}"
    out[f"{name}_MAX"] = f"{peak:.0f}"
    out[f"{name}_MAX_AT"] = f"{peak_at:.1f}"
    out[f"{name}_PLATEAU"] = "yes" if flat else "no"
    if name != "OUTBOX": bounded = bounded and flat
out["TABLES_OK"] = verdict(bounded)
out["LAG_MAX"] = f"{max(num(r, 'consumer_lag') or 0 for r in soak):.0f}"
out["SOAK_MINUTES_MEASURED"] = f"{minutes:.1f}"
out["STEADY_FROM"] = f"{minute(steady[0]):.1f}"
out["LAST_FROM"] = f"{minute(last[0]):.1f}"

# One sample per minute of the whole run (the first at or after each full minute).
table, seen = [], set()
start = float(rows[0]["t_s"])
for r in rows:
    m = int((float(r["t_s"]) - start) // 60)
    if m in seen: continue
    seen.add(m)
    kib = lambda k: f"{num(r, k) / 1024:.1f}" if num(r, k) is not None else ""
    table.append("| " + " | ".join([r["time_utc"][11:19], r["phase"], kib("users_rss_kib"), r["users_fds"],
        kib("notif_rss_kib"), r["notif_fds"], r["requests_per_s"], r["p50_ms"], r["p99_ms"], r["outbox_rows"],
        r["notifications_rows"], r["idempotency_rows"], r["consumer_lag"]]) + " |")
out["TABLE"] = "\n".join(table)

t = [(float(r["t_s"]) - t0) / 60 for r in rows]
def series(k, scale=1.0): return [num(r, k) * scale if num(r, k) is not None else float("nan") for r in rows]
fig, ax = plt.subplots(5, 1, figsize=(10, 15), sharex=True)
ax[0].plot(t, series("users_rss_kib", 1 / 1024), label="user-service")
ax[0].plot(t, series("notif_rss_kib", 1 / 1024), label="notification-service")
ax[0].set_ylabel("RSS (MiB)"); ax[0].set_ylim(bottom=0)
ax[1].plot(t, series("users_fds"), label="user-service")
ax[1].plot(t, series("notif_fds"), label="notification-service")
ax[1].set_ylabel("open fds"); ax[1].set_ylim(bottom=0)
ax[2].plot(t, series("p50_ms"), label="p50")
ax[2].plot(t, series("p99_ms"), label="p99")
ax[2].set_ylabel("POST /register/ (ms, per interval)"); ax[2].set_ylim(bottom=0)
ax[3].plot(t, series("notifications_rows"), label="notifications")
ax[3].plot(t, series("outbox_rows"), label="outbox")
ax3b = ax[3].twinx()
ax3b.plot(t, series("idempotency_rows"), color="tab:green", label="idempotency_keys (right)")
ax3b.set_ylabel("idempotency_keys rows"); ax3b.set_ylim(bottom=0)
ax[3].set_ylabel("rows"); ax[3].set_ylim(bottom=0)
ax[3].legend(loc="upper left"); ax3b.legend(loc="lower right")
ax[4].plot(t, series("consumer_lag"), label="consumer lag (sum of partitions)")
ax[4].set_ylabel("messages"); ax[4].set_ylim(bottom=0)
ax[4].set_xlabel("minutes since the soak load started (negative: maximum-rate run)")
for a in (ax[0], ax[1], ax[2], ax[4]):
    a.legend(loc="upper left")
for a in ax:
    a.grid(alpha=0.3)
    a.axvline(0, color="grey", lw=0.8); a.axvline(minutes, color="grey", lw=0.8)
fig.suptitle(f"Soak: {minutes:.0f} min at {rate:.0f} registrations/s")
fig.tight_layout()
fig.savefig(png, dpi=80)
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
EOF
ANALYSIS=$("$VENV/bin/python" "$WORK/analyse.py" "$CSV" "$OUT_DIR/soak.png" "$RATE" "$KEYED_RATE") \
  || die "analysis failed"
# The analysis prints NAME=value lines (quoted): USERS_RSS_SLOPE, TABLES_OK, TABLE, …
USERS_RSS_SLOPE_ALL="" USERS_RSS_SLOPE="" USERS_RSS_MEAN="" USERS_RSS_MAX="" USERS_RSS_OK="" USERS_FDS=""
NOTIF_RSS_SLOPE_ALL="" NOTIF_RSS_SLOPE="" NOTIF_RSS_MEAN="" NOTIF_RSS_MAX="" NOTIF_RSS_OK="" NOTIF_FDS=""
P99_SLOPE_ALL="" P99_SLOPE="" P99_MEAN="" P99_OK="" P50_MEAN="" TABLES_OK="" LAG_MAX="" TABLE=""
NOTIFICATIONS_SLOPE="" NOTIFICATIONS_INSERTS="" NOTIFICATIONS_MAX="" NOTIFICATIONS_MAX_AT="" NOTIFICATIONS_PLATEAU=""
IDEMPOTENCY_SLOPE="" IDEMPOTENCY_INSERTS="" IDEMPOTENCY_MAX="" IDEMPOTENCY_MAX_AT="" IDEMPOTENCY_PLATEAU=""
OUTBOX_MAX="" OUTBOX_MAX_AT="" SOAK_MINUTES_MEASURED="" STEADY_FROM="" LAST_FROM=""
eval "$ANALYSIS"
# The shared broker and database may be restarted by other jobs (fault tests): a
# changed pid between two samples says when.
RESTARTS=$(awk -F, 'NR > 2 && $17 != k { printf "the Kafka broker restarted between %s and %s; ", t, $1 }
  NR > 2 && $18 != m { printf "MariaDB restarted between %s and %s; ", t, $1 }
  NR > 1 { k = $17; m = $18; t = $1 }' "$CSV")
ERRORS_OK=$([ "$ERRORS" = 0 ] && echo met || echo '**missed**')
LOST_OK=$([ "$LOST" = 0 ] && echo met || echo '**missed**')
MARIADB_VERSION=$(root_sql 'SELECT VERSION()')

cat >"$OUT_DIR/soak.md" <<EOF
# Soak run

Written by \`$COMMAND\` (a benchmark, not part of \`scripts/test.sh\`); started
$START_UTC, built from commit $COMMIT$([ -n "$DIRTY" ] && echo " plus uncommitted changes (other work in progress) to $DIRTY"). Release builds, the real MariaDB and Kafka of
\`scripts/deps.sh\`. Raw samples: [soak-samples.csv](soak-samples.csv); chart:
[soak.png](soak.png).

## Verdict

| check | measured | |
|---|---|---|
| RSS flat: user-service | $USERS_RSS_SLOPE MiB/min over minutes $STEADY_FROM-$SOAK_MINUTES_MEASURED (mean $USERS_RSS_MEAN MiB) | $USERS_RSS_OK |
| RSS flat: notification-service | $NOTIF_RSS_SLOPE MiB/min over minutes $STEADY_FROM-$SOAK_MINUTES_MEASURED (mean $NOTIF_RSS_MEAN MiB) | $NOTIF_RSS_OK |
| p99 flat | $P99_SLOPE ms/min over minutes $STEADY_FROM-$SOAK_MINUTES_MEASURED (mean p99 $P99_MEAN ms) | $P99_OK |
| tables bounded | notifications $NOTIFICATIONS_SLOPE rows/min, idempotency_keys $IDEMPOTENCY_SLOPE rows/min over minutes $LAST_FROM-$SOAK_MINUTES_MEASURED | $TABLES_OK |
| zero errors | $ERRORS requests answered other than 201 | $ERRORS_OK |
| zero lost | $LOST of $USERS_TOTAL registered users never notified | $LOST_OK |

How the verdicts are computed (all from the samples, by the script):

- **flat** = the least-squares slope over the last two thirds of the soak (the first third
  is the ramp: pools, buffers and the tables filling up to their retention), times that
  window's length, is within 10 % of the window's mean RSS, within 25 % of its mean p99;
- **bounded** = over the last third, the slope of the notifications and of the
  idempotency_keys row count is within 10 % of the rate rows are inserted into that
  table ($NOTIFICATIONS_INSERTS and $IDEMPOTENCY_INSERTS rows/min);
- **errors** = answers other than 201 to \`platformctl load\` (maximum-rate run and soak)
  and to the keyed registrations; **lost** = users in the users table with no
  notification row (rows are copied to an audit table before housekeeping deletes them).

## Machine

- $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); memory: $MEMORY_AT_START
- kernel $(uname -r); load average $LOAD_AT_START at the start, $LOAD_AT_END at the end (shared machine: other jobs ran too)
- $(rustc --version), MariaDB $MARIADB_VERSION (\`innodb_flush_log_at_trx_commit=$FLUSH\` as the server was), Kafka (KRaft, one broker)
- everything (load generator, both services, MariaDB, Kafka) on the same machine

## The run

1. Topic \`$TOPIC\`, 6 partitions, \`retention.ms=$TOPIC_RETENTION_MS\`, \`segment.ms=$TOPIC_SEGMENT_MS\`: the
   longest life of a message is 5 + 1 + 5 = 11 minutes, so the notification-service
   accepts \`NOTIFICATIONS_RETENTION=$NOTIFICATIONS_RETENTION\`. user-service:
   \`IDEMPOTENCY_KEY_TTL=$IDEMPOTENCY_TTL HOUSEKEEPING_INTERVAL=$HOUSEKEEPING_INTERVAL\`;
   notification-service: \`NOTIFICATIONS_RETENTION=$NOTIFICATIONS_RETENTION HOUSEKEEPING_INTERVAL=$HOUSEKEEPING_INTERVAL\`.$([ -n "$HOUSEKEEPING_NOTE" ] && printf '\n   **Not in these binaries:** %s' "$HOUSEKEEPING_NOTE")
2. Maximum rate: \`platformctl load -c 16 --duration $MAX_SECONDS\`: **$MAX_RATE registrations/s**
   ($MAX_ERRORS errors).
3. Soak: \`platformctl load -c 64 --rate $RATE --duration $SOAK_SECONDS\` (half the maximum):
   $SOAK_CREATED created at $SOAK_ACHIEVED/s, errors: $SOAK_BY_STATUS; request latency over
   the whole soak p50 / p99 / p99.9 / max $SOAK_LAT ms (from each request's scheduled
   start). Alongside, $KEYED_SENT registrations with an \`Idempotency-Key\` ($KEYED_RATE/s, every
   20th sent twice with its key), $KEYED_ERRORS answered other than 201
   (\`platformctl load\` sends no key, so without these the idempotency table would stay empty).
4. Afterwards every registered user was notified within $((DRAIN_MS / 1000)) s of the load's end
   (waited for at most 10 min): $NOTIFIED of $USERS_TOTAL users notified, $LOST never.
   The consumer counted $DELIVERED delivered, $DUPLICATES duplicates, $DEAD dead-lettered.
   Log lines at ERROR level: user-service $USERS_LOG_ERRORS, notification-service $NOTIF_LOG_ERRORS.
   Restarts of the shared MariaDB or Kafka during the run (by other jobs on the machine;
   this script restarts nothing): ${RESTARTS:-none}.
5. Housekeeping, from the services' logs: the notification-service said "${RETENTION_LINE:-nothing about its retention}";
   $HOUSEKEEPING_WARNINGS "housekeeping failed" warnings. Runs that deleted rows over the whole run:

| service | job | runs that deleted rows | rows deleted |
|---|---|---:|---:|
$HOUSEKEEPING_MD

Sampled every $INTERVAL s: VmRSS and open fds of each service from \`/proc\`; registration
p50/p99 over the interval from the deltas of the user-service's
\`http_request_duration_seconds\` histogram (route \`/register/\`, interpolated within a
bucket as \`histogram_quantile\` does; the buckets are 0.5, 1, 2.5, 5, 10, 25, 50, 100 ms…,
so a quantile is exact only to its bucket; this is the server's time, without the queueing
the load generator adds); row counts by \`COUNT(*)\`; consumer lag = sum of the
notification-service's \`kafka_consumer_lag\` (high watermark minus committed offset,
committed every second, so about a second of traffic shows as lag while the consumer
keeps up).

## Slopes and sizes

| series | slope, whole soak | slope, minutes $STEADY_FROM-$SOAK_MINUTES_MEASURED | mean there | highest |
|---|---:|---:|---:|---:|
| user-service RSS (MiB/min) | $USERS_RSS_SLOPE_ALL | $USERS_RSS_SLOPE | $USERS_RSS_MEAN MiB | $USERS_RSS_MAX MiB |
| notification-service RSS (MiB/min) | $NOTIF_RSS_SLOPE_ALL | $NOTIF_RSS_SLOPE | $NOTIF_RSS_MEAN MiB | $NOTIF_RSS_MAX MiB |
| registration p99 (ms/min) | $P99_SLOPE_ALL | $P99_SLOPE | $P99_MEAN ms (p50 $P50_MEAN ms) | |

Open file descriptors during the soak: user-service $USERS_FDS, notification-service $NOTIF_FDS.
Consumer lag: at most $LAG_MAX messages.

| table | highest row count | at minute | slope over minutes $LAST_FROM-$SOAK_MINUTES_MEASURED (rows/min) | rows inserted per minute | plateau |
|---|---:|---:|---:|---:|---|
| notifications | $NOTIFICATIONS_MAX | $NOTIFICATIONS_MAX_AT | $NOTIFICATIONS_SLOPE | $NOTIFICATIONS_INSERTS | $NOTIFICATIONS_PLATEAU |
| idempotency_keys | $IDEMPOTENCY_MAX | $IDEMPOTENCY_MAX_AT | $IDEMPOTENCY_SLOPE | $IDEMPOTENCY_INSERTS | $IDEMPOTENCY_PLATEAU |
| outbox | $OUTBOX_MAX | $OUTBOX_MAX_AT | | | |

## Samples, one per minute

Phases: \`warmup\` (services idle), \`max\` (maximum-rate run), \`settle\` (its events
consumed), \`soak\`, \`drain\` (waiting for the last notifications). RSS in MiB, latency in ms.

| time (UTC) | phase | user-service RSS | fds | notification-service RSS | fds | registrations/s | p50 | p99 | outbox | notifications | idempotency_keys | lag |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$TABLE

![soak chart](soak.png)
EOF
log "done: $OUT_DIR/soak.md"
cat "$OUT_DIR/soak.md"
