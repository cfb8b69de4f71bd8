# The two commands that matter: `make run` (the whole desk with demo data) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
PYTEST_ARGS ?=
BENCH_ARGS ?=
LOAD_ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
# Reinstall only when requirements.lock is newer than the last install.
DEPS_STAMP := $(VENV)/.requirements.lock.installed

.PHONY: help venv run test test-postgres bench load chaos

help:
	@echo "make run            run the desk with demo data at http://127.0.0.1:8000 (PORT=... to change)"
	@echo "make test           run every test (SQLite)"
	@echo "make test-postgres  run every test against a throwaway PostgreSQL 15 cluster"
	@echo "make bench          run the benchmarks in bench/"
	@echo "make load           the load generator against a full local stack (LOAD_ARGS=\"--rate 100 --duration 300\")"
	@echo "make chaos          faults against a running stack on a throwaway PostgreSQL (prints counts)"

venv: $(DEPS_STAMP)

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): requirements.lock | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements.lock
	@touch $@

run: venv
	$(PY) bin/run-desk

test: venv
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test-postgres: venv
	bin/pg-test-cluster $(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py $(BENCH_ARGS)

load: venv
	$(PY) -m bench.loadgen $(LOAD_ARGS)

chaos: venv
	HELPDESK_CHAOS=1 bin/pg-test-cluster $(VENV)/bin/pytest -q -p no:cacheprovider tests/chaos $(PYTEST_ARGS)
