# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ROSETTA := $(VENV)/bin/rosetta
# The lowest-bounds venv: every direct dependency at the lowest version pyproject.toml allows.
LOWEST ?= .venv-lowest
UV := $(VENV)/bin/uv
export OMP_WAIT_POLICY ?= PASSIVE
export ROSETTA_DATA_DIR ?= $(CURDIR)/.rosetta

.PHONY: demo test lowest soak lint typecheck bench clean

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
	$(PIP) install -q -e '.[bge-m3,evals,dev,serve,llamaindex,ray]'
	touch $@

demo: $(VENV)/.core
	$(ROSETTA) ingest demo/manuals --collection demo
	$(ROSETTA) status
	$(ROSETTA) ask "¿Cada cuánto tiempo hay que cambiar el filtro de aire?" --collection demo

test: $(VENV)/.dev
	$(VENV)/bin/ruff check rag connectors evals tests
	$(VENV)/bin/mypy rag connectors evals tests
	ROSETTA_TEST_REQUIRE_BGE_M3=1 $(PY) -m pytest -q -m "not slow"
	$(MAKE) lowest

# The lowest-bounds job: the core install plus the llamaindex and dev extras, each direct dependency at its
# lowest declared version (uv's lowest-direct resolution, synced exactly, so a stale venv cannot hide a
# bound), then the tests that exercise each of those dependencies (a few minutes; the whole suite is
# `make test`'s). A bound below what the code needs fails here. The bge-m3, serve and evals extras are left
# out: their tests skip (tiny_bge_m3) or are not in LOWEST_TESTS.
LOWEST_TESTS ?= tests/test_architecture.py tests/test_packaging.py tests/test_config.py tests/test_store.py \
	tests/test_encoders_e5.py tests/test_lang.py tests/test_chunk.py tests/test_connectors_parsers.py \
	tests/test_connectors_files.py tests/test_connectors_web.py tests/test_retrieve.py tests/test_ingest.py \
	tests/test_cli.py tests/test_logs.py tests/test_secrets.py tests/test_generators_openai.py \
	tests/test_generators_cohere.py tests/test_rerankers.py tests/test_faults_database.py \
	tests/test_faults_generation.py tests/test_llamaindex_retriever.py tests/test_connectors_llamaindex.py
$(LOWEST)/.lowest: pyproject.toml | $(VENV)/.dev
	UV_PYTHON_DOWNLOADS=never $(UV) venv -q --allow-existing --python python3 $(LOWEST)
	$(UV) pip compile -q --resolution lowest-direct --python $(LOWEST)/bin/python --extra dev --extra llamaindex \
		pyproject.toml -o $(LOWEST)/requirements.txt
	$(UV) pip sync -q --python $(LOWEST)/bin/python $(LOWEST)/requirements.txt
	$(UV) pip install -q --python $(LOWEST)/bin/python --no-deps -e .
	touch $@

lowest: $(LOWEST)/.lowest
	$(LOWEST)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(LOWEST_TESTS)

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
	-test -x $(ROSETTA) && $(ROSETTA) server stop
	rm -rf .rosetta
