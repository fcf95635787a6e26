# The two commands of the README: `make demo` and `make test`. Each builds its own virtual
# environment from pyproject.toml + constraints.txt (the exact versions verified together).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ML_PLATFORM_HOME ?= $(CURDIR)/.ml-platform
export DAGSTER_HOME ?= $(ML_PLATFORM_HOME)/dagster
UI_PORT ?= 3000
REPORTS_PORT ?= 3001
MLFLOW_PORT ?= 5000

.PHONY: demo test ui mlflow-ui install lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## make demo: the whole loop on the embedded defaults, on a fresh platform home.
demo: $(STAMP)
	rm -rf $(ML_PLATFORM_HOME)
	$(BIN)/ml-platform demo

## make test: the whole test suite (integration tests skip with a reason unless CI=true).
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## make ui: the Dagster UI on the demo's history; sensors keep picking up new data commits.
ui: $(STAMP)
	@mkdir -p $(DAGSTER_HOME) $(ML_PLATFORM_HOME)/reports
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp deploy/dagster/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@echo "Dagster UI:  http://127.0.0.1:$(UI_PORT)   reports: http://127.0.0.1:$(REPORTS_PORT)"
	@set -m; $(BIN)/python -m http.server $(REPORTS_PORT) --bind 127.0.0.1 \
	    -d $(ML_PLATFORM_HOME)/reports >/dev/null 2>&1 & trap "kill $$! 2>/dev/null" EXIT; \
	  ML_PLATFORM_REPORTS_URL=http://127.0.0.1:$(REPORTS_PORT) \
	  $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(UI_PORT)

## make mlflow-ui: the MLflow UI on the demo's tracking store and registry.
mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(ML_PLATFORM_HOME)/mlflow/mlflow.db \
	  --host 127.0.0.1 --port $(MLFLOW_PORT)

lint: $(STAMP)
	$(BIN)/ruff check ml_platform assets sensors resources definitions.py tests bench

typecheck: $(STAMP)
	$(BIN)/mypy ml_platform

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .ml-platform .pytest_cache
