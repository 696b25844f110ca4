# Every target bootstraps its own virtual environment, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test lint typecheck bench asyncapi clean install faults image container-test compose-test k8s-validate

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)  ## run the whole platform (embedded NATS + PostgreSQL + the four services)
	$(BIN)/iioe up

test: $(STAMP) lint typecheck k8s-validate  ## ruff, mypy and the whole test suite against real servers
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check shared services iioe_tools tests bench conftest.py
	$(BIN)/ruff format --check shared services iioe_tools tests bench conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy shared/iioe services iioe_tools tests bench conftest.py

faults: $(STAMP)  ## chaos suite (3–5 min): faults injected into a running platform; results into docs/reliability.md
	IIOE_FAULTS=1 $(BIN)/python -m pytest tests/faults -p no:cacheprovider


BENCH_ARGS ?=
bench: $(STAMP)  ## one run against the broker's ceilings: docs/bench/results.{json,md,png} (BENCH_ARGS=--quick)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

asyncapi: $(STAMP)
	$(BIN)/iioe asyncapi --out docs/asyncapi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .iioe

# --- containers (deploy/README.md) -------------------------------------------------------
IMAGE ?= iioe-platform:local

image:  ## the platform image from deploy/Dockerfile (a local Debian base when python:3.11-slim cannot be pulled)
	IMAGE=$(IMAGE) deploy/scripts/build-image.sh

container-test: $(STAMP)  ## the image's containers against real NATS/PostgreSQL: ready, non-root, read-only, SIGTERM, simulate
	IMAGE=$(IMAGE) BIN=$(BIN) deploy/scripts/container-test.sh

compose-test: $(STAMP)  ## docker-compose.yml for real (3-node NATS cluster, PostgreSQL, the services) with a smoke test
	IMAGE=$(IMAGE) BIN=$(BIN) deploy/scripts/compose-test.sh

k8s-validate: $(STAMP)  ## deploy/k8s against the Kubernetes schemas (offline) and the project's probe/PDB/resource rules
	$(BIN)/python deploy/scripts/validate_k8s.py
