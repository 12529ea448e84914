# One command per task; CI calls the same targets. `make help` lists them.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
LEARNFLOW := $(BIN)/learnflow
PYTEST := $(BIN)/python -m pytest
QUIX := .run/quix-venv/installed

.DEFAULT_GOAL := help
.PHONY: help bootstrap up up-cluster down status test test-unit test-integration test-cluster lint bench bench-mastery bench-ingest bench-api loadtest vegeta

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap: ## Install Debian packages, the Python virtualenv and the Kafka jars (idempotent)
	@scripts/bootstrap.sh

up: bootstrap ## Start Kafka, Redis, PostgreSQL, Ray, the Serve app and the web editor; print the URLs
	@$(LEARNFLOW) up

up-cluster: bootstrap ## The cluster profile: 3 Kafka nodes (RF 3, min ISR 2), 2 Ray nodes, shards and API replicas on both
	@$(LEARNFLOW) up --cluster

down: ## Stop everything `make up` or `make up-cluster` started
	@if [ -x $(LEARNFLOW) ]; then $(LEARNFLOW) down; else echo "nothing to stop (no $(VENV))"; fi

status: ## Show each component: running or not, pid, port, URL
	@$(LEARNFLOW) status

test: bootstrap ## Run every test: unit, integration against the real services, web editor (vitest, Chromium)
	@scripts/test.sh

test-unit: bootstrap ## Unit tests only (no services)
	@$(PYTEST) tests/unit

test-integration: bootstrap ## Integration tests against the running platform (`make up` first)
	@$(PYTEST) tests/integration

test-cluster: bootstrap ## Node-loss tests on the cluster profile (stops the single-node platform first, restarts it after)
	@scripts/test-cluster.sh

lint: bootstrap ## ruff (lint + format check) and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

bench: bench-mastery bench-hot-path bench-ingest bench-api ## Run every benchmark and print its figures

bench-mastery: bootstrap ## BKT fit vs pyBKT 1.4.3 (C++): fit time, AUC, log-loss, RMSE, parameter MAE
	@$(BIN)/python -m benchmarks.mastery

bench-hot-path: bootstrap ## A shard host's CPU per event by stage (parse, fold, Redis commands, COPY rows), no services
	@$(BIN)/python -m benchmarks.hot_path

bench-ingest: up $(QUIX) ## Ingest path vs a bare Kafka consumer and Quix Streams: events/s, latency p50/p99, recovery
	@$(BIN)/python -m benchmarks.ingest

# The peer of bench-ingest in its own virtualenv: Quix Streams' pins conflict with ours.
$(QUIX): benchmarks/quix-requirements.txt
	@rm -rf .run/quix-venv
	$${PYTHON:-python3.11} -m venv .run/quix-venv
	.run/quix-venv/bin/python -m pip install -q -r benchmarks/quix-requirements.txt
	@touch $@

bench-api: up vegeta ## GET /progress and POST /attempts at fixed rates vs a floor app; JWT and grader costs
	@$(BIN)/python -m benchmarks.api

VEGETA := .run/go/bin/vegeta
vegeta: $(VEGETA) ## Build vegeta v12.13.0 (fixed-rate HTTP load) from the Go module proxy
$(VEGETA):
	@command -v go >/dev/null || { echo "error: bench-api needs Go to build vegeta (apt-get install golang)"; exit 1; }
	GOPATH=$(CURDIR)/.run/go GOFLAGS=-mod=mod go install github.com/tsenart/vegeta/v12@v12.13.0

STUDENTS ?= 100
DURATION ?= 60s
loadtest: up ## Locust students at a student's pace (STUDENTS=1000 DURATION=3m); reports in .run/loadtest/
	@mkdir -p .run/loadtest
	$(BIN)/locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 \
		--users $(STUDENTS) --spawn-rate 50 --run-time $(DURATION) --stop-timeout 10 \
		--csv .run/loadtest/locust --html .run/loadtest/report.html --only-summary
	@echo "reports: .run/loadtest/locust_stats.csv, .run/loadtest/report.html"
