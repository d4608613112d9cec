#!/usr/bin/env sh
# `make loadtest-k6`: the k6 scenarios with a local k6 if there is one, else
# with the official k6 image through the compose `loadtest` profile.
#
# A Docker formation on LB_PORT is always loaded through the profile, even
# when k6 is installed: the profile's k6 shares the load balancer's network
# namespace and sends from 127.0.0.1, which the rate limit exempts, whereas a
# host k6 arrives from the compose network's gateway, one client limited to
# 20 r/s (docker-compose.yml, lb).
set -eu
cd "$(dirname "$0")/../.."
LB_PORT="${LB_PORT:-8080}"
export LB_PORT
LB_URL="${LB_URL:-http://127.0.0.1:$LB_PORT}"
mkdir -p loadtest/results

# The project name formation/docker-commands.ts gives the formation on LB_PORT.
if [ "$LB_PORT" = 8080 ]; then project=headcount; else project="headcount-$LB_PORT"; fi

# docker compose for that project, with the env file ENV_FILE names, as
# formation/docker-commands.ts runs it (compose reads a plain .env by itself).
dc() {
  if [ -n "${ENV_FILE:-}" ] && [ "$ENV_FILE" != .env ]; then
    docker compose -p "$project" --env-file "$ENV_FILE" "$@"
  else
    docker compose -p "$project" "$@"
  fi
}

docker_formation_running() {
  docker info >/dev/null 2>&1 && [ -n "$(dc ps --quiet --status running lb 2>/dev/null)" ]
}

with_docker() {
  if ! docker_formation_running; then
    # As `make start MODE=docker`: REPLICAS replicas, healthy before k6 starts.
    # It keeps running afterwards (`make stop MODE=docker` stops it).
    echo "no Docker formation on port $LB_PORT: starting one (compose project $project)" >&2
    dc up --build --detach --wait --scale "web=${REPLICAS:-4}"
  fi
  for scenario in accuracy throughput; do
    # 127.0.0.1, not lb:8080: k6 runs in lb's network namespace (see above).
    # --no-deps: the running formation is used as it is, never recreated.
    # --user: the reports in loadtest/results/ belong to the caller, not to
    # the image's uid 12345, who could not write there.
    dc --profile loadtest run --rm --no-deps --user "$(id -u):$(id -g)" k6 \
      run -e LB_URL=http://127.0.0.1:8080 -e RESULTS_DIR=/loadtest/results "/loadtest/k6/$scenario.ts"
  done
}

if docker_formation_running; then
  with_docker
elif command -v k6 >/dev/null 2>&1; then
  for scenario in accuracy throughput; do
    k6 run -e LB_URL="$LB_URL" -e RESULTS_DIR=loadtest/results "loadtest/k6/$scenario.ts"
  done
elif docker info >/dev/null 2>&1; then
  with_docker
else
  echo "make loadtest-k6 needs k6 (https://grafana.com/docs/k6/latest/set-up/install-k6/) or a running Docker engine; this machine has neither." >&2
  echo "make loadtest checks the same invariants (and more) with autocannon." >&2
  exit 1
fi
