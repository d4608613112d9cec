#!/bin/sh
# Stands in for k6 in the Docker tier (test/docker/compose.k6-standin.yml):
# takes the arguments loadtest/k6/run.sh gives k6,
#   run -e LB_URL=... -e RESULTS_DIR=... /loadtest/k6/<scenario>.ts
# sends 150 counting visits one after another to LB_URL on one connection
# (far above the 20 r/s + 40 burst a rate-limited client may send),
# and writes a JSON summary to RESULTS_DIR as k6's handleSummary would. Exits
# 99, k6's code for failed thresholds, unless every visit got 200 and the
# count grew by exactly 150.
set -eu
[ "${1:-}" = run ] || { echo "k6 stand-in: only 'run' is supported" >&2; exit 2; }
shift
while [ $# -gt 1 ]; do
  case "$1" in
    -e) export "$2"; shift 2 ;;
    *) echo "k6 stand-in: unexpected argument $1" >&2; exit 2 ;;
  esac
done
script=$1
[ -r "$script" ] || { echo "k6 stand-in: cannot read $script" >&2; exit 2; }
scenario=$(basename "$script" .ts)
count() { curl -fsS "$LB_URL/api/count" | tr -cd 0-9; }

before=$(count)
# One curl, one keep-alive connection, 150 visits (URL globbing: /?v=1 ...
# /?v=150, each a visit of /): hundreds a second even on a busy machine, where
# 150 curl processes started one after another could fall below 20 r/s and
# never meet the limit.
statuses=$(curl -s -o /dev/null -w '%{http_code}\n' -H 'Accept: application/json' "$LB_URL/?v=[1-150]" \
  | sort | uniq -c | awk '{ printf "%s\"%s\":%s", (NR > 1 ? "," : ""), $2, $1 }')
after=$(count)

summary="{\"scenario\":\"$scenario\",\"uid\":$(id -u),\"lb_url\":\"$LB_URL\",\"statuses\":{$statuses},\"delta\":$((after - before))}"
file="$RESULTS_DIR/k6-standin-$scenario-$(date +%s)-$$.json"
printf '%s\n' "$summary" >"$file"
echo "$summary"
echo "report: $file"
[ "$statuses" = '"200":150' ] && [ $((after - before)) -eq 150 ] || exit 99
