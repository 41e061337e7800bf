# Thin aliases over the tools configured in pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit integration e2e demo bench soak clean check-venv

# A $(VENV) whose Python is older than 3.11 (or no longer runs) cannot hold the project: stop, saying how to
# make it again, before pip or pytest fail in their own words. Checked before every target that uses it.
check-venv:
	@if test -x $(BIN)/python && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	    echo "$(VENV) was made by $$($(BIN)/python -V 2>&1 || echo 'a Python that no longer runs'); the project needs Python 3.11 or newer." >&2; \
	    echo "Make it again: rm -rf $(VENV) && make $(MAKECMDGOALS) PYTHON=python3.11 (or any Python 3.11+)" >&2; \
	    exit 1; \
	fi

$(STAMP): pyproject.toml handler/version.py | check-venv  # the installed metadata carries the version
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(MAKE) --no-print-directory check-venv
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check handler exporter_tools tests
	$(BIN)/ruff format --check handler exporter_tools tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The tests in three subsets, each without the coverage floor (only the whole suite can meet it).
# unit: no socket, no subprocess, nothing slow; seconds. The three files below start a fresh interpreter (the
# command line, the cold path, what importing reads), so they run with the integration tests.
FRESH_PROCESS_TESTS := tests/function/unit/test_cli.py tests/function/unit/test_cold_path.py \
    tests/function/unit/test_import_discipline.py
TOOLS_UNIT_TESTS := tests/tools/test_habits.py tests/tools/deploy/test_sdk_models_helpers.py \
    tests/tools/deploy/test_template.py tests/tools/deploy/test_vefaas_sdk_models.py \
    tests/tools/deploy/test_vefaas_sign.py tests/tools/deploy/test_zipcheck.py \
    tests/tools/emulator/test_emulator_layout.py tests/tools/emulator/test_emulator_state.py \
    tests/tools/emulator/test_signature.py
# e2e: whole commands against the emulators over real sockets (the function, deploy, status, the emulator's CLI).
TOOLS_E2E_TESTS := tests/tools/deploy/test_deploy.py tests/tools/deploy/test_deploy_ux.py \
    tests/tools/deploy/test_deploy_doctor.py \
    tests/tools/emulator/test_status_command.py \
    tests/tools/emulator/test_emulator_cli.py tests/tools/emulator/test_receiver_walkthrough.py
# integration: every other tools test (a new one lands here until it is listed above).
TOOLS_INTEGRATION_TESTS := $(filter-out $(TOOLS_UNIT_TESTS) $(TOOLS_E2E_TESTS),\
    $(wildcard tests/tools/test_*.py tests/tools/*/test_*.py))

unit: $(STAMP)
	HYPOTHESIS_PROFILE=quick $(BIN)/pytest -m "not soak" tests/function/unit $(addprefix --ignore=,$(FRESH_PROCESS_TESTS)) $(TOOLS_UNIT_TESTS)

integration: $(STAMP)
	$(BIN)/pytest -m "not soak" tests/function/integration $(FRESH_PROCESS_TESTS) $(TOOLS_INTEGRATION_TESTS)

e2e: $(STAMP)
	$(BIN)/pytest -m "not soak" tests/function/e2e $(TOOLS_E2E_TESTS)

# Lint, types, then every test but the soak runs, once, with branch coverage (fail_under in pyproject.toml).
test: lint typecheck
	$(BIN)/pytest --cov --cov-report=term -m "not soak"

# The whole product against the local ECS emulator and webhook receiver: no account, no network.
demo: $(STAMP)
	$(BIN)/exporter-tools demo

# Long fault-injection runs (more chaos seeds), kept out of `make test`.
soak: $(STAMP)
	$(BIN)/pytest -m soak -q

# Ours against the official SDK and the floor of the stack: deployed and local cold start, memory, warm
# latency, throughput, the follow-up's cost, size. Prints the report and writes .bench/benchmarks.md
# (untracked); to update docs/benchmarks.md run `$(BIN)/exporter-tools bench --write`. BENCH_ARGS passes
# options on: `make bench BENCH_ARGS=--memory` adds the peak RSS of a 20,000-image follow-up (minutes).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/exporter-tools bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .coverage
