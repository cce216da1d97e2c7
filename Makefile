# One entry point for people and CI. `make run` and `make test` each install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE_DIR := tests/azurite
NPM_STAMP := $(AZURITE_DIR)/node_modules/.installed
# The dashboard's browser tests drive Debian's Chromium through Playwright (never a browser
# build Playwright would download).
CHROMIUM := /usr/bin/chromium

.PHONY: install run test test-fast lint bench services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NPM_STAMP): $(AZURITE_DIR)/package.json
	npm install --prefix $(AZURITE_DIR) --no-audit --no-fund --silent
	touch $(NPM_STAMP)

$(CHROMIUM):
	apt-get install -y --no-install-recommends chromium || \
	  (apt-get update && apt-get install -y --no-install-recommends chromium)

install: $(STAMP) $(NPM_STAMP) $(CHROMIUM)

run: $(STAMP)
	$(BIN)/python -m myapp

# PostgreSQL is required by the tests: start it when it is down, fail (never skip) when it cannot start.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main start || true
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "PostgreSQL on 127.0.0.1:5432 is not running and could not be started" >&2; exit 1

test: install services
	$(BIN)/python -m pytest

# The tests that need no service (no PostgreSQL, Azurite or subprocess), while you work: see
# tests/fixtures/services.py. Not what CI runs: CI runs `make test`, every test.
# worksteal: an idle worker takes tests queued on a busy one, so no worker ends alone on a
# queue of timer-bound tests. Four workers whatever the cores: about half of these tests' time
# is spent waiting on timers (leases, timeouts, backoffs), which more workers overlap (on this
# 2-core machine: 33 s with 2, 28 s with 3, 27 s with 4). Bytecode is written (an environment
# that sets PYTHONDONTWRITEBYTECODE would make every worker recompile every module, ~1.5 s each).
FAST_WORKERS ?= 4
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest --fast -q -n $(FAST_WORKERS) --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check myapp containers tests
	$(BIN)/ruff format --check myapp containers tests
	$(BIN)/mypy

bench: install services
	$(BIN)/python -m tests.benchmarks

clean:
	rm -rf $(VENV) $(AZURITE_DIR)/node_modules .pytest_cache .mypy_cache .hypothesis
