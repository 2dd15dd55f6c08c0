"""The core install: every product module imports and `rosetta` ingests and searches with the optional
extras' packages made unimportable; a missing extra is named with its install command; ``--version``.

The extras' packages are blocked in a child interpreter (a meta path finder that refuses them), which is
what a core ``pip install rosetta-rag`` looks like to the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli.app import app
from rag.config import Config

ROOT = Path(__file__).resolve().parent.parent
# The packages of the llamaindex, evals, bge-m3 and serve extras (and what llama-index-core brings).
EXTRAS = ("llama_index", "aiohttp", "sqlalchemy", "nltk", "PIL", "psutil", "matplotlib", "torch", "transformers",
          "FlagEmbedding", "sentence_transformers", "onnxruntime", "onnx", "fastapi", "uvicorn", "mcp")
BLOCK = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""
# Imports every module of the product but the extras' adapters (and the __main__ modules, which would run),
# then runs the command line given.
CORE = BLOCK + """
import importlib, pkgutil, rag, connectors
adapters = ("rag.llamaindex_retriever", "rag.serve", "rag.__main__", "rag.cli.__main__")
for package in (rag, connectors):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.startswith(adapters):
            importlib.import_module(module.name)
from rag.cli.app import app
app(sys.argv[1:], prog_name="rosetta")
"""


def _core(*args: str, env: dict[str, str] | None = None, code: str = CORE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture
def core_env(config: Config) -> dict[str, str]:
    import os

    assert config.db.url is not None
    return {**os.environ, "ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
            "ROSETTA_DATA_DIR": str(config.db.data_dir), "ROSETTA_ENCODER": "e5-small", "NO_COLOR": "1", "COLUMNS": "200"}


def test_the_core_install_ingests_and_searches_without_any_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "note.md").write_text("# Filter\n\nThe air filter is replaced every six months.\n")
    ingested = _core("ingest", str(tmp_path), "--collection", "core", "--json", env=core_env)
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["chunks"] == 1
    found = _core("search", "Wie oft wird der Luftfilter gewechselt?", "--collection", "core", "--json", env=core_env)
    assert found.returncode == 0, found.stderr
    assert [hit["uri"] for hit in json.loads(found.stdout)["hits"]] == [(tmp_path / "note.md").as_uri()]


def test_a_missing_extra_is_named_with_its_install_command(core_env: dict[str, str]) -> None:
    bench = _core("bench", "ingest", env=core_env)
    assert (bench.returncode, bench.stderr.strip()) == (
        2, "error: this command needs the evals extra (psutil is not installed): pip install 'rosetta-rag[evals]'")
    retriever = _core(code=BLOCK + "import rag.llamaindex_retriever")
    assert retriever.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: rag.llamaindex_retriever needs the llamaindex extra (llama_index is not installed): "
        "pip install 'rosetta-rag[llamaindex]'")
    reader = _core(code=BLOCK + "import connectors; list(connectors.llamaindex_connector([]).sources())")
    assert reader.stderr.strip().splitlines()[-1] == (
        "rag.errors.ConnectorError: LlamaIndexConnector needs the llamaindex extra (llama_index is not installed): "
        "pip install 'rosetta-rag[llamaindex]'")


def test_version_is_the_distribution_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"rosetta {version}\n")
