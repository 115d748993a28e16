#!/usr/bin/env bash
# Registers test users through the user-service API, by default through the gateway.
#
#   ./generate-test-data.sh [-c|--concurrency N] [COUNT]
#
#   COUNT            users to register (default 40)
#   -c, --concurrency N
#                    requests in flight at once (default 4)
#   BASE_URL         user-service base URL (default http://localhost/api/users, the
#                    compose gateway; http://localhost:$GATEWAY_PORT/api/users when
#                    compose runs with GATEWAY_PORT); the service port works too:
#                    BASE_URL=http://localhost:8000
#   MAX_WAIT_SECONDS longest one registration keeps waiting out 429s (default 300)
#
# A 429 (the per-client registration limit) is waited out as its Retry-After says and
# the request sent again; the summary counts these waits. Connection failures, timeouts
# and 502/503/504 are retried three times. Every run uses its own run id in the e-mail
# addresses, so re-running never collides with earlier data; each request carries an
# Idempotency-Key, so a retry never registers a user twice. Exits non-zero when any
# registration failed. Needs only bash and curl.
set -euo pipefail

BASE_URL="${BASE_URL:-http://localhost${GATEWAY_PORT:+:$GATEWAY_PORT}/api/users}"
BASE_URL="${BASE_URL%/}"
COUNT=40
CONCURRENCY=4
MAX_WAIT_SECONDS="${MAX_WAIT_SECONDS:-300}"

usage() { sed -n '2,20s/^# \{0,1\}//p' "$0"; }
die() { printf 'generate-test-data: %s\n' "$*" >&2; exit 2; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }

while [ $# -gt 0 ]; do
  case $1 in
    -c|--concurrency)
      [ $# -ge 2 ] || die "$1 needs a number"
      CONCURRENCY=$2
      shift 2 ;;
    --concurrency=*)
      CONCURRENCY=${1#*=}
      shift ;;
    -h|--help)
      usage
      exit 0 ;;
    -*)
      die "unknown option $1 (see --help)" ;;
    *)
      COUNT=$1
      shift ;;
  esac
done
is_count "$COUNT" || die "COUNT must be a positive integer, got '$COUNT'"
is_count "$CONCURRENCY" || die "concurrency must be a positive integer, got '$CONCURRENCY'"
is_count "$MAX_WAIT_SECONDS" || die "MAX_WAIT_SECONDS must be a positive integer, got '$MAX_WAIT_SECONDS'"
command -v curl >/dev/null || die "curl is required"

RUN_ID="$(date +%s%N)"
export BASE_URL RUN_ID MAX_WAIT_SECONDS

# register INDEX: one registration, sent again after a 429 (waiting as Retry-After
# says) or a transient failure; prints "<http status> <index> <429 waits> <seconds waited>".
register() {
  local i=$1 out status retry_after waits=0 waited=0 transient=0
  while :; do
    out=$(curl -sS -o /dev/null -D - -w '\n%{http_code}' --max-time 10 \
      -H 'Content-Type: application/json' \
      -H "Idempotency-Key: test-data-$RUN_ID-$i" \
      --data "{\"user_name\":\"Test User $i\",\"email\":\"user-$RUN_ID-$i@example.com\"}" \
      "$BASE_URL/register/" 2>/dev/null) || true
    status=${out##*$'\n'}
    status=${status:-000}
    # Retry-After in seconds (the services send seconds; anything else counts as 1).
    retry_after=$(printf '%s\n' "$out" | tr -d '\r' | sed -n 's/^[Rr][Ee][Tt][Rr][Yy]-[Aa][Ff][Tt][Ee][Rr]: *\([0-9][0-9]*\) *$/\1/p' | head -1)
    retry_after=${retry_after:-1}
    [ "$retry_after" -ge 1 ] || retry_after=1
    case $status in
      429)
        [ $((waited + retry_after)) -le "$MAX_WAIT_SECONDS" ] || break
        waits=$((waits + 1))
        waited=$((waited + retry_after))
        sleep "$retry_after" ;;
      000|502|503|504)
        [ "$transient" -lt 3 ] || break
        transient=$((transient + 1))
        sleep "$( [ "$status" = 503 ] && echo "$retry_after" || echo 1 )" ;;
      *) break ;;
    esac
  done
  printf '%s %s %s %s\n' "$status" "$i" "$waits" "$waited"
}
export -f register

if ! curl -fsS --max-time 5 -o /dev/null "$BASE_URL/health/live"; then
  die "user-service is not reachable at $BASE_URL (GET $BASE_URL/health/live failed); is the stack up? Set BASE_URL to reach it another way, e.g. BASE_URL=http://localhost:8000"
fi

printf 'Registering %d users at %s/register/ (concurrency %d, run %s)\n' \
  "$COUNT" "$BASE_URL" "$CONCURRENCY" "$RUN_ID"

created=0 duplicates=0 failed=0 done_count=0 waits=0 waited=0
failures=()
# On a terminal the progress line rewrites itself; in a log, one line per 10%.
if [ -t 1 ]; then step=1; else step=$(( COUNT >= 10 ? COUNT / 10 : 1 )); fi
progress() {
  local line
  line=$(printf 'progress: %d/%d  created %d  duplicates %d  failed %d  429 waits %d' \
    "$done_count" "$COUNT" "$created" "$duplicates" "$failed" "$waits")
  if [ -t 1 ]; then printf '\r  %s' "$line"; else printf '  %s\n' "$line"; fi
}
start_ns=$(date +%s%N)
# shellcheck disable=SC2016 # $1 is expanded by the inner bash, not here
while read -r status index user_waits user_waited; do
  waits=$((waits + user_waits))
  waited=$((waited + user_waited))
  case $status in
    201) created=$((created + 1)) ;;
    409) duplicates=$((duplicates + 1)) ;;
    *) failed=$((failed + 1)); failures+=("user $index: HTTP $status") ;;
  esac
  done_count=$((done_count + 1))
  if [ $((done_count % step)) -eq 0 ] || [ "$done_count" -eq "$COUNT" ]; then progress; fi
done < <(seq 1 "$COUNT" | xargs -P "$CONCURRENCY" -I{} bash -c 'register "$1"' _ {})
if [ -t 1 ]; then printf '\n'; fi

elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
printf 'Summary: created %d, duplicates (409) %d, failed %d, rate-limit waits (429) %d (%ds), elapsed %d.%03ds\n' \
  "$created" "$duplicates" "$failed" "$waits" "$waited" $((elapsed_ms / 1000)) $((elapsed_ms % 1000))

if [ "$failed" -gt 0 ]; then
  printf '  %s\n' "${failures[@]:0:10}" >&2
  [ "$failed" -le 10 ] || printf '  ... and %d more\n' $((failed - 10)) >&2
  exit 1
fi
