# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck pytest chromium sdk bench bench-profile soak wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The development install has the Python SDK (sdk/, its own distribution) beside the server.
$(DEV_STAMP): pyproject.toml sdk/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ./sdk -e '.[dev]'
	touch $(STAMP) $@

## run: install into .venv and serve Waypost on SQLite (./waypost.db), with the demo site
run: $(STAMP)
	$(BIN)/waypost serve --demo

## test: install the dev tools into .venv, then ruff, mypy and the whole test suite
test: lint typecheck pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check waypost sdk tests bench
	$(BIN)/ruff format --check waypost sdk tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# The real browser clients the collectors are tested with (docs/collectors.md): npm installs
# them, as the lock file pins them, into tests/js/node_modules (not committed), and the tests
# serve them to their pages from there.
JS_STAMP := tests/js/node_modules/.installed
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  echo "npm is missing: install Node.js and npm for the browser clients' tests" >&2; exit 1; }
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The Python SDK as its own distribution (docs/python-sdk.md): its wheel, built from sdk/ and
# installed alone into .venv-sdk, where tests/test_sdk_distribution.py checks it.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed
$(SDK_STAMP): sdk/pyproject.toml $(wildcard sdk/src/waypost_sdk/*) | $(BIN)/python
	rm -rf $(SDK_VENV) sdk/dist
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir sdk/dist ./sdk
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet sdk/dist/waypost_sdk-*.whl
	touch $@

## sdk: build the Python SDK's wheel and install it alone into .venv-sdk
sdk: $(SDK_STAMP)

pytest: $(DEV_STAMP) chromium $(JS_STAMP) $(SDK_STAMP)
	$(BIN)/pytest

# The browser tests drive Debian's chromium (Playwright's own browser download is not used).
# Without it they skip, or fail under WAYPOST_REQUIRE_SERVICES=1.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing chromium with apt-get, for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	      echo "Could not install chromium: the browser tests cannot run" >&2; \
	  else \
	    echo "$(CHROMIUM) is missing: install it (apt-get install chromium) for the browser tests" >&2; \
	  fi; }

## bench: ingest against its baselines, 100-activity batches on PostgreSQL against a raw COPY
## (the local server, database waypost_bench), webhook latency and drain, then groups and the
## activity log on 1M contacts and 10M activities (built once under bench-results/, about 8 GB),
## then exports and the purge on the same database, then reports on a copy of it; see
## docs/performance.md
bench: $(DEV_STAMP) wrk
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.pg $(PG_BENCH_ARGS)
	$(BIN)/python -m bench.webhooks $(WEBHOOK_ARGS)
	$(BIN)/python -m bench.scale $(SCALE_ARGS)
	$(BIN)/python -m bench.lifecycle $(LIFECYCLE_ARGS)
	$(BIN)/python -m bench.reports $(REPORTS_ARGS)

## bench-profile: sample Waypost's ingest with py-spy under load (KIND=single or batch)
KIND ?= batch
bench-profile: $(DEV_STAMP) wrk
	$(BIN)/python -m pip install --quiet py-spy
	$(BIN)/python -m bench.profile $(KIND) $(BENCH_ARGS)

## soak: a steady 100 activities/s for 30 minutes, per-minute p50/p99, memory and descriptors
## of the server (SOAK_ARGS="--minutes 20 --rate 100 --spy"; not part of make test)
soak: $(DEV_STAMP)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The load generator is wrk 4 from the system's packages.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  command -v apt-get >/dev/null 2>&1 || { \
	    echo "make bench needs wrk 4, and apt-get is not available to install it:" >&2; \
	    echo "install wrk with your system's package manager, then run make bench again." >&2; \
	    exit 1; }; \
	  echo "Installing wrk with apt-get"; \
	  $(SUDO) apt-get install -y wrk || { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; }; }

clean:
	rm -rf $(VENV) $(SDK_VENV) sdk/dist .mypy_cache .pytest_cache .ruff_cache
