"""Session resources: one embedded Postgres (pgvector >= 0.7) and the tiny BGE-M3-format model."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rag.config import Config
    from rag.store import PgStore

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One-shot CLI commands keep the embedded Postgres running after them; a test suite that starts hundreds of
# data directories must not leave their servers behind. tests/test_keeper.py turns it on where it tests it.
os.environ["ROSETTA_KEEP_ALIVE"] = "0"


def _require_bge_m3_extra() -> None:
    # A core install (`make lowest`) has no bge-m3 extra: its tests skip there; `make test` requires it.
    if os.environ.get("ROSETTA_TEST_REQUIRE_BGE_M3") == "1":
        return
    missing = [name for name in ("transformers", "sentence_transformers") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the bge-m3 extra is not installed ({', '.join(missing)})")


@pytest.fixture
def bge_m3_extra() -> None:
    """Skips the test when the bge-m3 extra is missing, unless ROSETTA_TEST_REQUIRE_BGE_M3=1 (`make test`)."""
    _require_bge_m3_extra()


@pytest.fixture(scope="session")
def tiny_bge_m3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BGE-M3-format model directory with random XLM-R weights, built once per session."""
    from tests.models import build_tiny_bge_m3

    _require_bge_m3_extra()
    return build_tiny_bge_m3(tmp_path_factory.mktemp("tiny-bge-m3"))


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One embedded Postgres for the session, checked for pgvector >= 0.7 (sparsevec)."""
    from rag.store.database import ensure_pgvector, start_embedded

    data_dir = tmp_path_factory.mktemp("pg")
    url, server = start_embedded(data_dir)
    version = ensure_pgvector(url)
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 7), f"pgvector {version} has no sparsevec"
    yield url
    server.cleanup()


@pytest.fixture
def schema() -> str:
    """A fresh schema name per test, so tests never see each other's rows."""
    import uuid

    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def config(pg_url: str, schema: str, tmp_path: Path) -> Config:
    """A Config on the session database in a fresh schema, with the offline encoder."""
    from rag.config import Config, DbConfig, EncoderKind, ModelConfig

    return Config(db=DbConfig(url=pg_url, data_dir=tmp_path / "data", schema=schema),
                  models=ModelConfig(encoder=EncoderKind.E5_SMALL), collection="test")


@pytest.fixture
def store(config: Config) -> Iterator[PgStore]:
    """A migrated PgStore on a fresh schema."""
    from rag.store import PgStore
    from rag.store.database import Database

    database = Database.open(config.db.url, config.db.data_dir)
    pg_store = PgStore(database.pool, config.db.schema)
    pg_store.migrate()
    yield pg_store
    database.close()


DEMO = Path(__file__).resolve().parent.parent / "demo" / "manuals"


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A writable copy of the demo corpus."""
    import shutil

    target = tmp_path / "manuals"
    shutil.copytree(DEMO, target)
    return target


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory, tiny_bge_m3: Path) -> Path:
    """A one-label XLM-R cross-encoder directory (random weights, the tiny BGE-M3 tokenizer), built once."""
    from tests.models import build_tiny_cross_encoder

    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder"), tiny_bge_m3)


@pytest.fixture(scope="session")
def served_demo(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A schema holding the demo manuals (hashing encoder) for the server tests, ingested once, and its
    data directory: (schema, data dir)."""
    from tests.serving import open_demo, serve_config

    config = serve_config(pg_url, tmp_path_factory.mktemp("serve-data"))
    open_demo(config).close()
    return config.db.schema, config.db.data_dir
