# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ROSETTA := $(VENV)/bin/rosetta
export OMP_WAIT_POLICY ?= PASSIVE
export ROSETTA_DATA_DIR ?= $(CURDIR)/.rosetta

.PHONY: demo test soak lint typecheck bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Core install: no torch, so the offline e5-small encoder is used.
$(VENV)/.core: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Test install: torch first (the CPU wheel; a plain `torch` requirement would pull a CUDA build),
# then BGE-M3 support, the dev tools, the servers (rosetta serve / mcp) and Ray (rosetta ingest --ray).
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[bge-m3,evals,dev,serve,ray]'
	touch $@

demo: $(VENV)/.core
	$(ROSETTA) ingest demo/manuals --collection demo
	$(ROSETTA) status
	$(ROSETTA) ask "¿Cada cuánto tiempo hay que cambiar el filtro de aire?" --collection demo

test: $(VENV)/.dev
	$(VENV)/bin/ruff check rag connectors evals tests
	$(VENV)/bin/mypy rag connectors evals tests
	ROSETTA_TEST_REQUIRE_BGE_M3=1 $(PY) -m pytest -q -m "not slow"

# The long fault runs (e.g. 20+ seeded SIGKILL-and-rerun ingests), kept out of `make test`.
soak: $(VENV)/.dev
	ROSETTA_TEST_REQUIRE_BGE_M3=1 $(PY) -m pytest -q -m slow

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check rag connectors evals tests

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy rag connectors evals tests

bench: $(VENV)/.dev
	$(PY) -m evals.bench_ingest --data ../shared/data/manuals

clean:
	rm -rf .rosetta
