# Thin aliases over the tools configured in pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck unit demo bench soak clean

$(STAMP): pyproject.toml handler/version.py  # the installed metadata carries the version
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check handler exporter_tools tests
	$(BIN)/ruff format --check handler exporter_tools tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term -m "not soak"

test: lint typecheck unit

# The whole product against the local ECS emulator and webhook receiver: no account, no network.
demo: $(STAMP)
	$(BIN)/exporter-tools demo

# Long fault-injection runs (more chaos seeds), kept out of `make test`.
soak: $(STAMP)
	$(BIN)/pytest -m soak -q

# Ours against the official SDK and the floor of the stack: deployed and local cold start, memory, warm
# latency, throughput, size. Prints the report and writes .bench/benchmarks.md (untracked); to update
# docs/benchmarks.md run `$(BIN)/exporter-tools bench --write`.
bench: $(STAMP)
	$(BIN)/exporter-tools bench

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .coverage
