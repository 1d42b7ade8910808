# tsops: `make demo` and `make test` set everything up on a fresh machine (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tsops-installed
PYTEST_ARGS ?=

AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.tsops-airflow-installed

.PHONY: install demo test test-fast lint bench clean browser

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"tsops needs Python 3.11, found {sys.version.split()[0]} (set PYTHON=/path/to/python3.11)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Airflow lives in its own venv; its DAG calls the tsops CLI (tests/orchestration/test_airflow.py uses it)
$(AIRFLOW_STAMP): airflow/constraints.txt airflow/requirements.txt airflow/install.sh
	PYTHON=$(PYTHON) bash airflow/install.sh $(AIRFLOW_VENV)
	@touch $(AIRFLOW_STAMP)

# Debian's chromium for the dashboard's browser test; without root the test skips (or fails in CI) with a reason
browser:
	@bash scripts/install-chromium.sh || echo "chromium could not be installed: the dashboard browser test will skip"

demo: $(STAMP)
	$(BIN)/tsops demo --dir demo

test: $(STAMP) $(AIRFLOW_STAMP) browser
	TSOPS_AIRFLOW_VENV=$(abspath $(AIRFLOW_VENV)) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) demo .pytest_cache
