"""Ingest on Ray (rag/ray_ingest.py) against the embedded Postgres: the rows equal an in-process ingest's,
a run whose actors are killed (Ray's own ``ray.kill``) and then rerun equals a clean run, and a document that
fails in a worker is reported as the in-process ingest reports it. One local Ray serves the module (it takes
seconds to start), and the corpora are small."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from psycopg import sql

from rag.config import Config
from rag.errors import ConfigError
from rag.ingest import FileReport, IngestReport, IngestStatus
from rag.ray_ingest import RayExecutor
from rag.rosetta import Rosetta
from rag.store.adapt import dense_from_pg
from rag.types import Connector, Encoder
from tests.fakes import HashEncoder, PoisonEncoder
from tests.stats import STATS_DRIFT

ray = pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install -e '.[ray]'")

# Two actors of half a CPU each, so the loading-and-chunking tasks (half a CPU each) run beside them.
EXECUTOR = RayExecutor(actors=2, cpus_per_actor=0.5)
CHUNKS = """
    SELECT d.uri, d.title, d.language, d.content_hash, c.id, c.ordinal, c.text, c.language, c.page, c.heading,
           c.start_char, c.end_char, c.dense, c.sparse
    FROM {s}.documents d JOIN {s}.chunks c ON c.document_id = d.id
    JOIN {s}.collections k ON k.id = d.collection_id WHERE k.name = %(name)s ORDER BY d.uri, c.ordinal
"""
SENTENCES = """
    SELECT s.chunk_id, s.ordinal, s.language, s.dense FROM {s}.sentences s
    JOIN {s}.collections k ON k.id = s.collection_id WHERE k.name = %(name)s ORDER BY 1, 2
"""
LINES = [
    "Der Luftfilter wird alle sechs Monate gereinigt. Nach zwei Jahren wird er ersetzt.",
    "ファームウェアの更新中は電源を切らないでください。更新には十分ほどかかります。",
    "La garantía cubre una pérdida de capacidad superior al treinta por ciento. Dura diez años.",
    "设备与墙面之间至少保留二十厘米的距离。请勿遮挡通风口。",
    "The fans produce about thirty-five decibels at full charging power. They stop when idle.",
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray of two CPUs for the module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _corpus(root: Path, documents: int, poison: int | None = None) -> Path:
    root.mkdir()
    for i in range(documents):
        marker = " POISON" if i == poison else ""
        (root / f"doc{i:02d}.txt").write_text(f"Nr. {i}.{marker} {LINES[i % 5]}\n\n{LINES[(i + 1) % 5]}\n")
    return root


def _other_schema(config: Config, suffix: str) -> Config:
    return replace(config, db=replace(config.db, schema=f"{config.db.schema}_{suffix}"))


@dataclass(frozen=True, slots=True)
class Rows:
    """A collection's chunk and sentence rows: the exact columns, and the vectors apart (compared to 1e-5)."""

    chunks: list[tuple[object, ...]]
    sentences: list[tuple[object, ...]]
    vectors: list[np.ndarray]

    def assert_equals(self, other: Rows) -> None:
        """The same rows, and vectors within 1e-5 (a batch of other texts pads differently)."""
        assert (self.chunks, self.sentences) == (other.chunks, other.sentences)
        assert len(self.vectors) == len(other.vectors)
        for mine, theirs in zip(self.vectors, other.vectors):
            np.testing.assert_allclose(mine, theirs, atol=1e-5)


def _rows(rosetta: Rosetta, name: str) -> Rows:
    schema = sql.Identifier(rosetta.config.db.schema)
    with rosetta.database.pool.connection() as conn:
        chunks = conn.execute(sql.SQL(CHUNKS).format(s=schema), {"name": name}).fetchall()
        sentences = conn.execute(sql.SQL(SENTENCES).format(s=schema), {"name": name}).fetchall()
        drift = conn.execute(sql.SQL(STATS_DRIFT).format(s=schema)).fetchall()
    assert drift == []
    # Sparse vectors as their dense form, so they are compared to the same tolerance.
    vectors = [dense_from_pg(v) for row in chunks for v in (row[12], row[13].to_numpy())]
    vectors += [dense_from_pg(row[3]) for row in sentences]
    return Rows([row[:12] for row in chunks], [row[:3] for row in sentences], vectors)


def _ingest(config: Config, name: str, paths: Sequence[str | Path | Connector], encoder: Encoder | None = None,
            executor: RayExecutor | None = None, progress: Any = None) -> tuple[IngestReport, Rows]:
    with Rosetta.open(config, encoder=encoder) as rosetta:
        report = rosetta.ingest(paths, collection=name, executor=executor, progress=progress)
        return report, _rows(rosetta, name)


def _by_uri(files: Sequence[FileReport]) -> list[FileReport]:
    return sorted(files, key=lambda f: f.uri)


def test_ray_ingest_of_the_manuals_equals_the_in_process_ingest(local_ray: Any, config: Config,
                                                                 demo_copy: Path) -> None:
    expected_report, expected = _ingest(config, "manuals", [demo_copy])
    # The configured encoder (e5-small), loaded by each worker from the Config, into a schema of its own so
    # the encoding cache starts empty and the actors encode every chunk themselves.
    ray_config = _other_schema(config, "ray")
    report, rows = _ingest(ray_config, "manuals", [demo_copy], executor=EXECUTOR)
    assert _by_uri(report.files) == _by_uri(expected_report.files)
    assert {f.status for f in report.files} == {IngestStatus.ADDED} and report.chunks == expected_report.chunks
    rows.assert_equals(expected)


@dataclass(slots=True)
class KillActors:
    """Progress that kills (``ray.kill``, no restart) this run's actors once the first source is done."""

    before: frozenset[str]
    killed: list[str] = field(default_factory=list)

    def sources_found(self, count: int) -> None:
        """Nothing to do."""

    def source_done(self, reports: Sequence[FileReport]) -> None:
        """Kill the run's actors, the first time."""
        if self.killed:
            return
        self.killed += sorted(set(ray.util.list_named_actors()) - self.before)
        for name in self.killed:
            ray.kill(ray.get_actor(name))


def test_killed_actors_then_a_rerun_equal_a_clean_run(local_ray: Any, config: Config, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", 12)
    _, clean = _ingest(config, "kill", [corpus], HashEncoder())
    killer = KillActors(frozenset(ray.util.list_named_actors()))
    ray_config = _other_schema(config, "kill")
    first, _ = _ingest(ray_config, "kill", [corpus], HashEncoder(), EXECUTOR, killer)
    assert len(killer.killed) == EXECUTOR.actors
    failed = [f for f in first.files if f.status is IngestStatus.FAILED]
    assert failed and len(first.files) == 12
    assert all(f.error is not None and f.error.startswith("the Ray worker processing it died (") and
               f.error.endswith("); run the ingest again to store it") for f in failed)
    rerun, rows = _ingest(ray_config, "kill", [corpus], HashEncoder(), EXECUTOR)
    # What the first run stored is skipped before any encoding; what failed is stored now, unless its actor
    # committed it just before it was killed (then the rerun finds it unchanged).
    statuses = {f.uri: f.status for f in rerun.files}
    assert {statuses[f.uri] for f in first.files if f not in failed} == {IngestStatus.UNCHANGED}
    assert {statuses[f.uri] for f in failed} <= {IngestStatus.ADDED, IngestStatus.UNCHANGED}
    rows.assert_equals(clean)


def test_a_document_failing_in_a_worker_is_reported_like_any_failed_document(local_ray: Any, config: Config,
                                                                             tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", 4, poison=2)
    (corpus / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    expected_report, expected = _ingest(config, "poison", [corpus], PoisonEncoder())
    report, rows = _ingest(_other_schema(config, "poison"), "poison", [corpus], PoisonEncoder(), EXECUTOR)
    assert _by_uri(report.files) == _by_uri(expected_report.files)
    failed = {Path(f.uri).name: f.error for f in report.files if f.status is IngestStatus.FAILED}
    assert failed.keys() == {"doc02.txt", "broken.docx"}
    assert failed["doc02.txt"] == "the encoder refused a text holding 'POISON'"
    rows.assert_equals(expected)


DRIVER = """
import sys
from pathlib import Path
import ray
from rag.config import Config, DbConfig
from rag.ray_ingest import RayExecutor
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder
ray.init(address=sys.argv[5], log_to_driver=False)
config = Config(db=DbConfig(url=sys.argv[1], schema=sys.argv[2], data_dir=Path(sys.argv[3])), collection="driver")
with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
    rosetta.ingest([sys.argv[4]], executor=RayExecutor(actors=2, cpus_per_actor=0.5))
"""
STORED = "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {s}.chunks c WHERE c.document_id = d.id)) " \
         "FROM {s}.documents d"


def _stored(rosetta: Rosetta) -> tuple[int, int]:
    """(documents, documents without chunks); (0, 0) before the driver migrated the schema."""
    import psycopg

    schema = sql.Identifier(rosetta.config.db.schema)
    try:
        with rosetta.database.pool.connection() as conn:
            row = conn.execute(sql.SQL(STORED).format(s=schema)).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0, 0
    return (int(row[0]), int(row[1])) if row else (0, 0)


def test_a_killed_driver_then_a_rerun_equal_a_clean_run(local_ray: Any, config: Config, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", 60)
    _, clean = _ingest(config, "driver", [corpus], HashEncoder())
    ray_config = _other_schema(config, "driver")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(config.db.url), ray_config.db.schema,
                               str(tmp_path / "data"), str(corpus), ray.get_runtime_context().gcs_address],
                              env=env, stderr=subprocess.PIPE)
    with Rosetta.open(ray_config, encoder=HashEncoder()) as rosetta:
        deadline = time.monotonic() + 240
        while _stored(rosetta)[0] == 0 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=60)
        # Ray kills the driver's actors with it; whatever they were writing rolls back.
        stored, without_chunks = _stored(rosetta)
    assert 0 < stored < 60 and without_chunks == 0, (stored, without_chunks)
    rerun, rows = _ingest(ray_config, "driver", [corpus], HashEncoder(), EXECUTOR)
    assert sum(f.status is IngestStatus.UNCHANGED for f in rerun.files) >= stored
    rows.assert_equals(clean)


@pytest.mark.parametrize(("executor", "cluster", "cpus"), [
    (RayExecutor(actors=2), 2.0, 0.75), (RayExecutor(actors=2), 8.0, 1.0),
    (RayExecutor(actors=3, cpus_per_actor=0.5), 2.0, 0.5)])  # fmt: skip
def test_actors_leave_half_a_cpu_to_the_loading_tasks(executor: RayExecutor, cluster: float, cpus: float) -> None:
    assert executor.cpus(cluster) == cpus


def test_actors_that_would_leave_the_tasks_no_cpu_are_refused() -> None:
    # Ray would wait for a free CPU forever (how `rosetta ingest --ray local` hung on two cores before).
    with pytest.raises(ConfigError) as caught:
        RayExecutor(actors=2, cpus_per_actor=1.0).cpus(2.0)
    assert str(caught.value) == ("2 Ray actors of 1 CPUs leave no CPU for the loading-and-chunking tasks (0.5 each) "
                                 "on a cluster of 2 CPUs; use fewer actors (--ray-actors) or fewer CPUs per actor")
