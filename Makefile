# Entry points. Each target creates .venv (Python 3.11) and installs the pinned
# dependencies on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: run test dev sample summary clean-data

$(BIN)/election-pipeline: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: election_pipeline/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp $< $@

## run: generate a sample election if data/input is empty, run the whole graph once, print a summary
run: $(BIN)/election-pipeline $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/election-pipeline sample --if-empty
	$(BIN)/election-pipeline run

## test: run the test suite
test: $(BIN)/election-pipeline
	$(BIN)/pytest

## dev: the Dagster UI (webserver + daemon) on http://127.0.0.1:3000, sensor and schedule running
dev: $(BIN)/election-pipeline $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

## sample: write the sample election into data/input and data/reference
sample: $(BIN)/election-pipeline
	$(BIN)/election-pipeline sample

## summary: print what the operational database holds
summary: $(BIN)/election-pipeline
	$(BIN)/election-pipeline summary

## clean-data: delete the local databases, generated reports and Dagster state (input, processed and quarantined files are kept)
clean-data:
	rm -rf data/election_monitoring.db* data/warehouse.duckdb* data/reports/* $(DAGSTER_HOME)
