# headcount: the front door. `make` alone lists every target.
# Variables can be overridden on the command line: make up REPLICAS=6 LB_PORT=9090
# Their defaults live in the CLI (formation/options.ts), not here, so that the
# environment and ENV_FILE (default .env) reach it: make's command-line
# variables are in every recipe's environment and win over both.

NODE_MODULES := node_modules/.package-lock.json
BUILD_STAMP  := dist/.built
SOURCES      := $(shell find web admin formation loadtest -name '*.ts' -not -name '*.test.ts' -not -path 'loadtest/k6/*' 2>/dev/null) $(wildcard web/assets/*) tsconfig.json tsconfig.build.json
CLI          := node dist/formation/cli.js

.DEFAULT_GOAL := help
.PHONY: help install build package release releases deploy rollback up start stop restart status logs reset-count loadtest loadtest-k6 bench bench-compare chaos test test-unit test-integration test-cluster test-docker test-swarm typecheck os-deps test-deps clean clean-data

help: ## Show this help
	@printf 'headcount: stateless counter replicas behind Nginx, sharing one Redis.\n\n'
	@printf 'Usage: make <target> [REPLICAS=4] [LB_PORT=8080] [MODE=auto|local|docker|swarm] [ENV_FILE=.env]\n\n'
	@# Colour only on a terminal, and never with NO_COLOR set (no-color.org).
	@if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %s%-17s%s %s\n", on, $$1, off, $$2 }' $(MAKEFILE_LIST)

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: $(NODE_MODULES) ## Install the locked npm dependencies (npm ci)

# Build stage (twelve-factor V): TypeScript to dist/; run stages only run dist/.
$(BUILD_STAMP): $(NODE_MODULES) $(SOURCES)
	npm run build
	@touch $@

build: $(BUILD_STAMP) ## Compile TypeScript to dist/

# Release and run stages (docs/releases.md): the artifact is built once per
# commit from the committed tree, paired with config in the ledger, then deployed.
package: build ## Build the current commit's artifact once: .releases/artifacts/<sha>/ (and the image headcount-web:<sha> where Docker runs)
	@$(CLI) package

release: build ## Package if needed, pair the artifact with this environment's config, append it to the ledger (REGISTRY=: push the image); refuses a dirty tree
	@$(CLI) release

releases: build ## List the releases (id, commit, created, config digest); * marks the one running
	@$(CLI) releases

deploy: build ## Rolling deploy of RELEASE=id (default: the newest), one replica at a time, the new one ready before an old one leaves
	@$(CLI) deploy

rollback: build ## Deploy the release before the running one, the same way
	@$(CLI) rollback

up: build ## Run the formation in the foreground (Docker if an engine answers, else local processes); Ctrl-C stops it. VERBOSE=1: every log line; RELEASE=id: run that release (local)
	@$(CLI) up

start: build ## Start the formation detached; returns once every replica is ready and the load balancer answers. RELEASE=id: run that release (local)
	@$(CLI) start

stop: build ## Stop the formation on LB_PORT, started by `make up` or `make start` (and nothing else)
	@$(CLI) stop

restart: build ## Rolling restart: replicas one at a time, the load balancer keeps serving
	@$(CLI) restart

status: build ## Show the running formation on LB_PORT
	@$(CLI) status

logs: build ## Follow every process's log of the formation on LB_PORT, prefixed by process (Docker: docker compose logs -f)
	@$(CLI) logs

reset-count: build ## One-off admin process: reset the count to 0 atomically and print old and new value
	@$(CLI) reset-count $(VALUE)

loadtest: build ## Prove count accuracy and measure throughput with autocannon (LB_URL REQUESTS CONNECTIONS DURATION CONCURRENCIES); starts a formation if none answers
	@node dist/loadtest/cli.js

loadtest-k6: ## The k6 scenarios (accuracy, throughput): via the compose loadtest profile when a Docker formation runs, else a local k6
	@sh loadtest/k6/run.sh

bench: build ## Scaling and overhead figures side by side (1/2/4 replicas, direct, exactly-once vs INCR, nginx ceiling, bare node:http, naive Express)
	@node dist/loadtest/bench.js

bench-compare: build ## One change before and after, in one run: BEFORE=<git rev> (packaged like make package) against this checkout (or AFTER=<rev>), 4 replicas via nginx, alternating rounds (ROUNDS DURATION CONNECTIONS ANSWER=json|html)
	@node dist/loadtest/compare.js

chaos: build ## Fault scenarios under load (replica kill/SIGTERM/rolling restart, nginx reload, Redis stop/hang/restart/long outage); one table
	@node dist/loadtest/chaos/cli.js

os-deps: build ## Install the local formation's redis-server and nginx from Debian's packages if missing (root), else print the command
	@node dist/formation/os-deps.js

test-deps: build ## os-deps, chromium for the page tests, and Prometheus (promtool) with its nginx and Redis exporters for the metrics tests
	@node dist/formation/os-deps.js chromium prometheus prometheus-nginx-exporter prometheus-redis-exporter

typecheck: $(NODE_MODULES) ## Type-check everything, tests and k6 scripts included
	npx tsc -p tsconfig.json --noEmit
	npx tsc -p loadtest/k6/tsconfig.json

test: build test-deps typecheck ## Run the unit, integration and cluster tiers, installing what is missing
	npx vitest run --project unit --project integration --project cluster

test-unit: build ## Unit tests only (pure logic, milliseconds)
	npx vitest run --project unit

test-integration: build test-deps ## Integration tests against a real redis-server
	npx vitest run --project integration

test-cluster: build test-deps ## Cluster tests: real nginx in front of real replicas and Redis
	npx vitest run --project cluster

test-docker: build ## Docker tier: docker compose up/scale/restart/stop for real (private dockerd and stand-in images if no engine answers)
	npx vitest run --project docker

test-swarm: build ## Swarm tier: a two-node Docker Swarm in network namespaces, a registry, deploys and failures for real (root)
	npx vitest run --project swarm

clean: ## Remove build output (dist/); local data stays (see clean-data)
	rm -rf dist

clean-data: build ## Delete the local formations' data in .run/ (counts, Redis passwords, logs); refuses while one runs
	@$(CLI) clean-data
