# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make demo   - create .venv if missing, install, run the demo
#   make test   - same set-up, then the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m proxcompute.kernels.warm
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/proxcompute demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks catalogs clusters scripts conftest.py
	$(BIN)/lint-imports

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks catalogs clusters scripts conftest.py
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_foundation.py --markdown bench-data/foundation.md
	$(BIN)/python benchmarks/bench_crossmatch.py --markdown bench-data/crossmatch.md

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
