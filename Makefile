# Storekeeper developer commands. `make run` serves a demo on http://127.0.0.1:8000;
# `make test` runs the linters (hadolint on the Dockerfile too), the type checker and the
# whole test suite.
# `make bench` runs the benchmark on the local PostgreSQL (see README "Benchmarks");
# `make bench-quick` is its short form that CI runs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format clean bench bench-quick drill drill-short

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/storekeeper db upgrade
	$(BIN)/storekeeper seed --demo
	@echo "Staff pages: http://$(HOST):$(PORT)/admin  sign in as admin@storekeeper.local / admin-password-123"
	@echo "Shop: http://$(HOST):$(PORT)/shop  sign in as customer@storekeeper.local / customer-password-123"
	$(BIN)/storekeeper serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/hadolint --failure-threshold style Dockerfile
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

test: lint
	$(BIN)/pytest

# Every scenario and locking strategy at full size (about 30 minutes on a busy 2-core
# machine); the chart and the JSON of the run also replace docs/bench.png and
# docs/bench-results.json.
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --chart docs/bench.png --json docs/bench-results.json

# Small sizes and short runs: fails on any oversell or inconsistency, never on speed.
bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

# Three app hosts (network namespaces, 2 workers each) behind one PgBouncer in front of a
# primary with a synchronous standby; holds and checkouts on all hosts at once, then the
# same with the primary stopped hard and the standby promoted (bench/drill.py; root, apt).
# About 8 minutes on a busy 2-core machine; its own clusters (5442, 5443) and PgBouncer (6442), all removed after.
drill: $(BENCH_STAMP)
	$(BIN)/python -m bench.drill --seconds 30 --compare-seconds 15

drill-short: $(BENCH_STAMP)
	$(BIN)/python -m bench.drill --seconds 10 --compare-seconds 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
