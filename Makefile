# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make demo   - create .venv if missing, install what a user installs (no extras), run the demo
#   make test   - create .venv if missing, install with the [test] extra, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
USER_STAMP := $(VENV)/.installed-user

.PHONY: demo test lint bench clean install

$(BIN)/python:
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
	  echo "$(PYTHON) cannot create a virtual environment (no ensurepip). On Debian/Ubuntu run:"; \
	  echo "    sudo apt-get install python3-venv"; \
	  echo "then run make again."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What `pip install proxcompute` gives a user: the package without extras.
$(USER_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m proxcompute.kernels.warm
	touch $(USER_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m proxcompute.kernels.warm
	touch $(STAMP)

install: $(STAMP)

demo: $(USER_STAMP)
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
