# Entry points. `make run` and `make test` create .venv (the machine's Python 3.11) and install
# the locked dependencies (uv.lock) on first use, with uv. Where uv is not installed, it is
# fetched from the package registry into .tools/ first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/uv/bin/uv
endif
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# uv uses the machine's interpreter, never one it would download.
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test test-quick lint dev sample summary clean-data constraints

.tools/uv/bin/uv:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	@start=$$(date +%s%N); \
	$(PYTHON) -m pip install -qq --disable-pip-version-check --root-user-action=ignore --target .tools/uv uv==$(UV_VERSION) && \
	echo "Set-up: uv $(UV_VERSION) fetched into .tools/uv in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

$(BIN)/election-pipeline: pyproject.toml uv.lock | $(UV)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	@start=$$(date +%s%N); \
	$(UV) sync --frozen --extra dev --python $(PYTHON) --quiet && \
	echo "Set-up: .venv ready in $$(( ($$(date +%s%N) - start) / 1000000 )) ms (uv sync --frozen, $(PYTHON))"
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: election_pipeline/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: generate a sample election if data/input is empty, run the whole graph once, print a summary
run: $(BIN)/election-pipeline $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/election-pipeline sample --if-empty
	$(BIN)/election-pipeline run

## test: run the test suite (in parallel; the browser tests need Debian's chromium)
test: $(BIN)/election-pipeline
	$(BIN)/pytest

## test-quick: the tests that start no process (pytest -m "not slow")
test-quick: $(BIN)/election-pipeline
	$(BIN)/pytest -m "not slow"

## lint: ruff (lint and format), the type checker and `dg check defs`, as CI runs them
lint: $(BIN)/election-pipeline $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/dg check defs

## dev: the Dagster UI (webserver + daemon) on http://127.0.0.1:3000, sensor and schedule running, and the HTTP API beside it (election-pipeline serve, http://127.0.0.1:8000 unless ELECTION_API_HOST/ELECTION_API_PORT say otherwise)
dev: $(BIN)/election-pipeline $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/election-pipeline serve & api=$$!; trap 'kill $$api 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dg dev -h 127.0.0.1 -p 3000

## sample: write the sample election into data/input and data/reference
sample: $(BIN)/election-pipeline
	$(BIN)/election-pipeline sample

## summary: print what the operational database holds
summary: $(BIN)/election-pipeline
	$(BIN)/election-pipeline summary

## constraints: write constraints.txt (the locked tree, for the pip fallback) from uv.lock
constraints: | $(UV)
	$(UV) export --frozen --format requirements-txt --no-hashes --all-extras --no-emit-project --no-header \
		--python $(PYTHON) --quiet -o constraints.txt

## clean-data: delete the local databases, generated reports and Dagster state (input, processed and quarantined files are kept)
clean-data:
	rm -rf data/election_monitoring.db* data/warehouse.duckdb* data/reports/* $(DAGSTER_HOME)
