#!/usr/bin/env bash
# Registers test users through the user-service API.
#
#   ./generate-test-data.sh [-c|--concurrency N] [COUNT]
#
#   COUNT            users to register (default 40)
#   -c, --concurrency N
#                    requests in flight at once (default 4)
#   BASE_URL         user-service base URL (default http://localhost:8000); the
#                    gateway works too: BASE_URL=http://localhost/api/users
#
# Every run uses its own run id in the e-mail addresses, so re-running never
# collides with earlier data; each request carries an Idempotency-Key, so
# curl's retries after a timeout never register a user twice. Exits non-zero
# when any registration failed. Needs only bash and curl.
set -euo pipefail

BASE_URL="${BASE_URL:-http://localhost:8000}"
BASE_URL="${BASE_URL%/}"
COUNT=40
CONCURRENCY=4

usage() { sed -n '2,16s/^# \{0,1\}//p' "$0"; }
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
command -v curl >/dev/null || die "curl is required"

RUN_ID="$(date +%s%N)"
export BASE_URL RUN_ID

# register INDEX: one registration; prints "<http status> <index>".
# The body goes to stdout with the status on the last line (curl cannot
# rewind /dev/null when it retries).
register() {
  local i=$1 out
  out=$(curl -sS -w '\n%{http_code}' \
    --max-time 10 --retry 3 --retry-delay 1 \
    -H 'Content-Type: application/json' \
    -H "Idempotency-Key: test-data-$RUN_ID-$i" \
    --data "{\"user_name\":\"Test User $i\",\"email\":\"user-$RUN_ID-$i@example.com\"}" \
    "$BASE_URL/register/" 2>/dev/null) || true
  out=${out##*$'\n'}
  printf '%s %s\n' "${out:-000}" "$i"
}
export -f register

if ! curl -fsS --max-time 5 -o /dev/null "$BASE_URL/health/live"; then
  die "user-service is not reachable at $BASE_URL (GET /health/live failed); set BASE_URL"
fi

printf 'Registering %d users at %s/register/ (concurrency %d, run %s)\n' \
  "$COUNT" "$BASE_URL" "$CONCURRENCY" "$RUN_ID"

created=0 duplicates=0 failed=0 done_count=0
failures=()
# On a terminal the progress line rewrites itself; in a log, one line per 10%.
if [ -t 1 ]; then step=1; else step=$(( COUNT >= 10 ? COUNT / 10 : 1 )); fi
progress() {
  local line
  line=$(printf 'progress: %d/%d  created %d  duplicates %d  failed %d' \
    "$done_count" "$COUNT" "$created" "$duplicates" "$failed")
  if [ -t 1 ]; then printf '\r  %s' "$line"; else printf '  %s\n' "$line"; fi
}
start_ns=$(date +%s%N)
# shellcheck disable=SC2016 # $1 is expanded by the inner bash, not here
while read -r status index; do
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
printf 'Summary: created %d, duplicates (409) %d, failed %d, elapsed %d.%03ds\n' \
  "$created" "$duplicates" "$failed" $((elapsed_ms / 1000)) $((elapsed_ms % 1000))

if [ "$failed" -gt 0 ]; then
  printf '  %s\n' "${failures[@]:0:10}" >&2
  [ "$failed" -le 10 ] || printf '  ... and %d more\n' $((failed - 10)) >&2
  exit 1
fi
