PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	HOST=127.0.0.1 $(BIN)/python -m bot demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check bot handlers tests bench
	$(BIN)/ruff format --check bot handlers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The benchmark drives load with wrk from Debian's packages; install it when
# it is missing and this is a Debian machine where we may use apt-get.
bench: $(STAMP)
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || true
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .bot-data .pytest_cache
