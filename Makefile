# Everything runs from the project's own .venv, created by `make setup` from a clean clone
# with only Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

.PHONY: setup browser test lint typecheck pytest bench demo up down lock clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	# Byte-compile at install: job processes start from fresh interpreters, and where
	# PYTHONDONTWRITEBYTECODE is set nothing would ever cache the compiled modules.
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode \
		-r requirements.txt -r requirements-dev.txt
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy include

# Debian's Chromium for the browser test of the UI (tests/integration/test_browser.py)
browser:
	scripts/install-browser

# Two processes (pytest-xdist), each test file whole on one of them: the slow end-to-end
# files mostly wait on jobs and servers, so two at a time halve the wall time on 2 cores.
PYTEST_WORKERS ?= 2
pytest: setup browser
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

bench: setup
	$(BIN)/python -m benchmarks

demo: setup
	scripts/demo

# STACK=celery: the production topology (Postgres, CeleryExecutor on Redis), see scripts/up
up: setup
	scripts/up

# Re-resolve the pins from what we ask for: requirements.txt (runtime: the image, every
# Airflow component) from requirements.in, then requirements-dev.txt (tests, linters) from
# requirements-dev.in on top of the runtime pins.
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.txt
	$(BIN)/uv pip compile requirements-dev.in --python-version 3.11 -o requirements-dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Stop what `make up` started (also what an interrupted `make demo` left running).
down:
	scripts/down
