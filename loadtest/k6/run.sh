#!/usr/bin/env sh
# `make loadtest-k6`: the k6 scenarios with a local k6 if there is one, else
# with the official k6 image through the compose `loadtest` profile.
set -eu
cd "$(dirname "$0")/../.."
LB_URL="${LB_URL:-http://127.0.0.1:${LB_PORT:-8080}}"
mkdir -p loadtest/results

if command -v k6 >/dev/null 2>&1; then
  for scenario in accuracy throughput; do
    k6 run -e LB_URL="$LB_URL" -e RESULTS_DIR=loadtest/results "loadtest/k6/$scenario.ts"
  done
elif docker info >/dev/null 2>&1; then
  # Inside the compose network the load balancer is `lb:8080`.
  for scenario in accuracy throughput; do
    docker compose --profile loadtest run --rm k6 run -e LB_URL=http://lb:8080 -e RESULTS_DIR=/loadtest/results "/loadtest/k6/$scenario.ts"
  done
else
  echo "make loadtest-k6 needs k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/) or a running Docker engine; this machine has neither." >&2
  echo "make loadtest checks the same invariants (and more) with autocannon." >&2
  exit 1
fi
