# Everything a fresh machine needs is installed by these targets; see README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast lint typecheck pytest run bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check provisioner tests benchmarks scripts
	$(BIN)/ruff format --check provisioner tests benchmarks scripts

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

# The inner loop: everything but the end-to-end runs of thousands of devices.
test-fast: lint typecheck
	$(BIN)/pytest -m "not slow"

run: install
	$(BIN)/python scripts/demo.py

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache demo-output
