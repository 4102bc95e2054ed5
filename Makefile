# Meterline: make run | make test | make lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format system-deps clean

$(STAMP): requirements/base.txt requirements/test.txt requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt -c requirements/lock.txt
	touch $(STAMP)

# PostgreSQL binaries for the integration tests; installed only where missing.
system-deps:
	@scripts/ensure-postgres

run: $(STAMP)
	$(PY) manage.py migrate --no-input
	exec $(PY) manage.py runstack

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .run
