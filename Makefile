# medspa-jobs: the local stack and the tests. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-dev.sha256

.PHONY: help prereqs venv venv-runtime up down status env console lint test test-unit test-runtime test-browser coverage chaos fuzz demo demo-quick

help:
	@echo "make help         this list"
	@echo "make prereqs      install what is missing with apt (as root or with sudo): make, curl, shellcheck, chromium,"
	@echo "                  Python 3.11, the emulators' Java or the stand-ins' Node and Go; says whether Python 3.12 is here"
	@echo "make venv         create or refresh .venv from requirements-dev.txt (stamped by its hash)"
	@echo "make venv-runtime the same into .venv-312 with Python 3.12, the runtime Cloud Functions runs (deploy/registry.py"
	@echo "                  RUNTIME); the local stack serves the functions from it. Skipped, saying why, without 3.12"
	@echo "make up           start the local stack on 127.0.0.1 (emulators, sandbox + console, functions, bridge)"
	@echo "make status       show each component up/down"
	@echo "make down         stop the local stack; nothing is left listening"
	@echo "make env          print the stack's environment as export lines (or: . .local/env.sh)"
	@echo "make console      up, then print where each page of the local console is"
	@echo "make demo         up + the whole story, narrated: a day of reminders, an outage and its retries, the"
	@echo "                  waitlist, a confirmation by text, the daily report (~2 min warm, ~4 min cold)"
	@echo "make demo-quick   the same story with a day compressed into 3 s (~1 min; what CI runs)"
	@echo "make lint         ruff check, ruff format --check, mypy"
	@echo "make test         lint + test-runtime + every test (the stack is started by the tests when it is not up)"
	@echo "make test-unit    unit tests only, no stack"
	@echo "make test-runtime the unit tests on the deployed runtime's Python (.venv-312)"
	@echo "make test-browser the console in headless chromium (Playwright) after the quick demo; screenshots in .local/artifacts/"
	@echo "make coverage     the unit suite's line coverage per shared/ module; fails under 85 % for a service module"
	@echo "make chaos        a Jepsen-style run on a stack of its own (faults, kills, duplicates); fails on any loss, duplicate or PHI"
	@echo "make fuzz         thousands of generated inputs: the decoders in-process, then HTTP against the local stack"
	@echo "                  (started for the run when it is not up, and stopped afterwards)"

# No venv needed: this is what a machine must have before one (local/prereqs.sh --check only lists it).
prereqs:
	@bash local/prereqs.sh

venv:
	@want="$$(sha256sum requirements-dev.txt | cut -d' ' -f1)"; \
	if [ -x $(PY) ] && $(PY) -c '' 2>/dev/null && [ "$$(cat $(STAMP) 2>/dev/null)" = "$$want" ]; then exit 0; fi; \
	[ -n "$(PYTHON)" ] || { echo "make venv: no python3 on PATH" >&2; exit 1; }; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "make venv: $(PYTHON) is older than Python 3.11" >&2; exit 1; }; \
	echo "make venv: installing requirements-dev.txt into $(VENV)"; \
	$(PY) -c '' 2>/dev/null || $(PYTHON) -m venv --clear $(VENV); \
	$(PY) -m pip install -q -r requirements-dev.txt; \
	echo "$$want" > $(STAMP)

# Under CI=true, a machine without the deployed runtime's Python fails here (elsewhere it is skipped, saying why).
venv-runtime: venv
	@$(PY) -m local.runtime venv

up: venv venv-runtime
	@$(PY) -m local.stack up

down: venv
	@$(PY) -m local.stack down

status: venv
	@$(PY) -m local.stack status

env: venv
	@$(PY) -m local.stack env

console: venv venv-runtime
	@$(PY) -m local.stack up >/dev/null
	@$(PY) -m local.sandbox.console

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# pytest exits 5 when it collected no tests: a run that checked nothing must not pass.
# Every test, none skipped for a missing tool: prereqs installs the system packages (chromium, shellcheck, Java,
# Node, Go ...) and the stand-ins' own tests run too (MEDSPA_TEST_STANDINS=0 leaves them out).
# The unit tests run once, on the deployed runtime's Python (test-runtime); .venv's Python runs the integration,
# browser and stand-ins' tests and the few unit tests about the dev Python itself (`make test-unit` runs all units
# on it). Running the unit suite on both took 4 more minutes of CI for code that is the same on both.
test: prereqs venv lint test-runtime
	@rc=0; MEDSPA_TEST_STANDINS=$${MEDSPA_TEST_STANDINS:-1} $(PY) -m pytest -q -m "integration or dev_python" || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$rc

test-unit: venv
	$(PY) -m pytest -q -m "not integration"

test-runtime: venv-runtime
	@rc=0; $(PY) -m local.runtime run -m pytest -q -m "not integration" || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test-runtime: pytest collected no tests" >&2; fi; \
	exit $$rc

# Skips, saying why, without chromium (apt-get install -y chromium) or the playwright package (make venv).
test-browser: venv
	$(PY) -m pytest -q tests/browser

# The unit suite's line coverage per module (no stack): every service module must reach 85 %.
coverage: venv
	$(PY) -m coverage run --source=shared -m pytest -q -m "not integration"
	$(PY) -m coverage report --show-missing --skip-empty
	$(PY) -m tests.coverage_floor

# Its own stack, brought up and down by the run (~3 min): ports from MEDSPA_CHAOS_PORT_BASE, else a free block
# inside MEDSPA_PORT_BASE's hundred (tests/spare_ports.py); state in $MEDSPA_STATE_DIR/chaos-stack.
chaos: venv venv-runtime
	$(PY) -m tests.chaos

# In-process properties with many examples, then 10,000 task bodies and 2,000 callbacks over HTTP (~4 min)
# against the stack of MEDSPA_PORT_BASE: started when it is not up, and then stopped again afterwards.
fuzz: venv venv-runtime
	MEDSPA_FUZZ_EXAMPLES=3000 $(PY) -m pytest -q tests/unit/test_boundary_properties.py
	@$(PY) -m tests.fuzz --start-stack

# The demo compresses send times (one day of waiting = 30 s) unless MEDSPA_DEMO_TIME_SCALE says otherwise.
demo: export MEDSPA_DEMO_TIME_SCALE ?= 2880
demo: prereqs venv venv-runtime
	@$(PY) -m local.stack up
	@$(PY) -m local.demo

demo-quick: prereqs venv venv-runtime
	@$(PY) -m local.stack up >/dev/null
	@$(PY) -m local.demo --quick
