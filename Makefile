# Every target bootstraps its own virtual environment, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck bench asyncapi clean install

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)  ## run the whole platform (embedded NATS + PostgreSQL + the four services)
	$(BIN)/iioe up

test: $(STAMP) lint typecheck  ## ruff, mypy and the whole test suite against real servers
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check shared services iioe_tools tests bench conftest.py
	$(BIN)/ruff format --check shared services iioe_tools tests bench conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy shared/iioe services iioe_tools tests bench conftest.py

BENCH_ARGS ?=
bench: $(STAMP)  ## one run against the broker's ceilings: docs/bench/results.{json,md,png} (BENCH_ARGS=--quick)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

asyncapi: $(STAMP)
	$(BIN)/iioe asyncapi --out docs/asyncapi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .iioe
