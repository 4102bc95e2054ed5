# Meterline: make run | make demo | make test | make lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test lint format system-deps clean

$(STAMP): requirements/base.txt requirements/test.txt requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt -c requirements/lock.txt
	touch $(STAMP)

# PostgreSQL binaries and Chromium for the integration tests; installed only where missing.
system-deps:
	@scripts/ensure-postgres
	@scripts/ensure-chromium

run: $(STAMP)
	$(PY) manage.py migrate --no-input
	exec $(PY) manage.py runstack

# `make run` plus a demo account, meters, a user (printed with its password) and a
# simulator streaming readings; Ctrl-C stops it all.
demo: $(STAMP)
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo_setup --meters $${SIM_METERS:-3}
	exec $(PY) manage.py runstack --with-simulator --sim-meters $${SIM_METERS:-3} --sim-rate $${SIM_RATE:-1}

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
