# Meterline: make run | make demo | make test | make lint | make bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo serve test lint format system-deps bench bench-scale bench-fleet clean

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

# Production processes (deploy/supervisord.conf): WEB_PROCESSES daphne on one port, WORKERS
# rating workers, Celery; needs DATABASE_URL, REDIS_URL, SECRET_KEY (deploy/README.md).
serve: $(STAMP)
	exec scripts/serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every test on PostgreSQL (the fast ones on a throwaway cluster: tests/postgres.py), then
# the SQLite job: the tests marked `sqlite` again on `make run`'s default database.
test: $(STAMP) system-deps lint
	$(VENV)/bin/pytest
	METERLINE_TEST_DB=sqlite $(VENV)/bin/pytest -m sqlite

# Performance targets on a live stack (not part of `make test`), about 20 minutes;
# a quick look: BENCH_RUNS=1 BENCH_SECONDS=5 BENCH_SOAK_SECONDS=40 make bench
bench: $(STAMP) system-deps
	$(PY) scripts/bench.py

# Readings/s with 1, 2 and 4 rating workers, and with 2 daphne processes.
bench-scale: $(STAMP) system-deps
	$(PY) scripts/bench.py --scale-out

# Fleet scale (issue 18): raw limits, the baselines, the paced latency and the scenarios of
# scripts/fleet/, 3 runs, under 30 minutes; a short look: BENCH_FLEET_RUNS=1 or --quick.
bench-fleet: $(STAMP) system-deps
	$(PY) scripts/bench_fleet.py

clean:
	rm -rf $(VENV) .run
