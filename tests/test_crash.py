"""SIGKILL a real ``rosetta ingest`` at seeded random points, rerun it: the rows equal one clean ingest.

Each run ingests a corpus into a fresh schema, killing the process one or more times first, some of those
times while it replaces an older version of every file (the update path). After every kill each stored
document must be exactly one complete version (no orphan chunks, no document without its chunks, no
half-replaced chunk list); after the final rerun the rows must equal a clean ingest's: the row counts,
content hashes, chunk ids and texts, and the encoding cache. ``make test`` runs a short loop;
``make soak`` runs the long one (marked slow).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from tests.stats import STATS_DRIFT

LANGUAGE_LINES = [
    "Der Luftfilter wird alle sechs Monate gereinigt und nach zwei Jahren ersetzt.",
    "ファームウェアの更新中は電源を切らないでください。",
    "La garantía cubre una pérdida de capacidad superior al treinta por ciento.",
    "设备与墙面之间至少保留二十厘米的距离。",
    "The fans produce about thirty-five decibels at full charging power.",
]
DOCUMENTS = 16
# Small chunks, so most documents have several and a kill can land inside one document's write.
SETTINGS = '[ingest]\nlanguages = ["de", "ja", "es", "zh", "en"]\nmax_tokens = 64\n'
CHUNK_ROWS = """
    SELECT d.uri, d.content_hash, c.id, c.ordinal, c.text, c.language, c.start_char, c.end_char
    FROM {s}.documents d JOIN {s}.chunks c ON c.document_id = d.id ORDER BY d.uri, c.ordinal
"""
COUNTS = """
    SELECT (SELECT count(*) FROM {s}.collections), (SELECT count(*) FROM {s}.documents),
           (SELECT count(*) FROM {s}.chunks), (SELECT count(*) FROM {s}.sentences)
"""
CACHE = "SELECT model, text_hash FROM {s}.encoding_cache ORDER BY model, text_hash"
ORPHANS = """
    SELECT (SELECT count(*) FROM {s}.chunks c WHERE NOT EXISTS
               (SELECT 1 FROM {s}.documents d WHERE d.id = c.document_id)),
           (SELECT count(*) FROM {s}.documents d WHERE NOT EXISTS
               (SELECT 1 FROM {s}.chunks c WHERE c.document_id = d.id))
"""
STORED_SINCE = "SELECT count(*) FROM {s}.documents WHERE updated_at >= %(since)s"

Document = tuple[str, tuple[tuple[object, ...], ...]]  # (content hash, its chunk rows)


@dataclass(frozen=True, slots=True)
class Kill:
    """Where to SIGKILL one ingest: after ``documents`` were stored in this run (0: by time) plus ``delay`` s."""

    version: int
    documents: int
    delay: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a clean ingest leaves, to compare a killed-and-rerun one with."""

    counts: tuple[object, ...]
    documents: dict[str, Document]
    cache: list[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Corpus:
    """The corpus directory, the settings file, and a clean ingest of each of its two versions."""

    root: Path
    settings: Path
    clean: tuple[Snapshot, Snapshot]


def _text(i: int, version: int) -> str:
    """Document ``i``: a line, then 0-2 paragraphs; version 0 (older) marks the line and reverses the paragraphs."""
    line = LANGUAGE_LINES[i % len(LANGUAGE_LINES)]
    paragraphs = [f"Nr. {i}.{p}: {line} {LANGUAGE_LINES[(i + p) % len(LANGUAGE_LINES)]}" for p in range(i % 3)]
    if version == 0:
        return "\n\n".join([f"(Entwurf) {line}", *reversed(paragraphs)]) + "\n"
    return "\n\n".join([line, *paragraphs]) + "\n"


def _write(root: Path, version: int) -> None:
    for i in range(DOCUMENTS):
        (root / f"doc{i:03d}.txt").write_text(_text(i, version))


def _ingest(pg_url: str, schema: str, corpus: Corpus) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ROSETTA_")}
    env |= {"ROSETTA_DATABASE_URL": pg_url, "ROSETTA_SCHEMA": schema, "ROSETTA_ENCODER": "e5-small",
            "ROSETTA_CONFIG": str(corpus.settings), "ROSETTA_DATA_DIR": str(corpus.root.parent / "data"),
            "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(corpus.root), "--collection", "crash"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _complete(process: subprocess.Popen[bytes]) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


def _query(pg_url: str, statement: str, schema: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(statement.format(s=schema)).fetchall()


def _snapshot(pg_url: str, schema: str) -> Snapshot:
    grouped: dict[str, list[tuple[object, ...]]] = {}
    hashes: dict[str, str] = {}
    for row in _query(pg_url, CHUNK_ROWS, schema):
        uri = str(row[0])
        hashes[uri] = str(row[1])
        grouped.setdefault(uri, []).append(row[2:])
    documents = {uri: (hashes[uri], tuple(rows)) for uri, rows in grouped.items()}
    return Snapshot(_query(pg_url, COUNTS, schema)[0], documents, _query(pg_url, CACHE, schema))


def _stored_since(conn: psycopg.Connection[TupleRow], schema: str, since: datetime) -> int:
    try:
        row = conn.execute(STORED_SINCE.format(s=schema), {"since": since}).fetchone()
    except psycopg.errors.UndefinedTable:  # the run has not migrated yet
        return 0
    return int(row[0]) if row else 0


def _kill(pg_url: str, schema: str, corpus: Corpus, kill: Kill) -> int:
    """Run one ingest of ``kill.version`` and SIGKILL it at ``kill``; return the documents it stored."""
    _write(corpus.root, kill.version)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        since = conn.execute("SELECT clock_timestamp()").fetchone()
        assert since is not None
        process = _ingest(pg_url, schema, corpus)
        deadline = time.monotonic() + 120
        while (kill.documents and _stored_since(conn, schema, since[0]) < kill.documents
               and process.poll() is None and time.monotonic() < deadline):
            time.sleep(0.01)
        time.sleep(kill.delay)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        return _stored_since(conn, schema, since[0])


def _plan(seed: int, runs: int, kills: tuple[int, int]) -> list[list[Kill]]:
    """Seeded kill points, ``kills`` (fewest, most) per run; a third of them while replacing the older version."""
    rng = random.Random(seed)

    def kill() -> Kill:
        documents = rng.randrange(DOCUMENTS)
        # By time: anywhere in start-up (imports, migrations, loading the encoder) or the first documents.
        delay = rng.uniform(0.0, 0.08) if documents else rng.uniform(0.2, 3.0)
        return Kill(rng.choice((0, 1, 1)), documents, delay)

    return [[kill() for _ in range(rng.randint(*kills))] for _ in range(runs)]


def _check_whole(pg_url: str, schema: str, corpus: Corpus) -> None:
    """Every stored document is exactly one complete version, and no chunk lacks its document.

    A kill during start-up, before the migrations commit, leaves no schema at all (they run in one
    transaction): nothing is stored. Once the schema exists its tables do, so the queries below run.
    """
    if _query(pg_url, "SELECT to_regnamespace('{s}')", schema) == [(None,)]:
        return
    assert _query(pg_url, ORPHANS, schema) == [(0, 0)]
    assert _query(pg_url, STATS_DRIFT, schema) == []
    stored = _snapshot(pg_url, schema).documents
    versions = [snapshot.documents for snapshot in corpus.clean]
    torn = [uri for uri, document in stored.items() if document not in (versions[0][uri], versions[1][uri])]
    assert torn == []


def _check_rerun(pg_url: str, schema: str, corpus: Corpus, kills: list[Kill]) -> None:
    """The rows equal the clean ingest's; the cache holds the final encodings (and perhaps older ones)."""
    rerun, (older, clean) = _snapshot(pg_url, schema), corpus.clean
    assert (rerun.counts, rerun.documents) == (clean.counts, clean.documents), f"{kills} left other rows"
    assert _query(pg_url, STATS_DRIFT, schema) == []
    assert set(clean.cache) <= set(rerun.cache) <= set(clean.cache) | set(older.cache)


def _soak(pg_url: str, corpus: Corpus, plan: list[list[Kill]]) -> list[int]:
    """Kill and rerun as planned, each run in a fresh schema; return the documents each kill left stored."""
    stored: list[int] = []
    for kills in plan:
        schema = f"crash_{uuid.uuid4().hex[:10]}"
        try:
            for kill in kills:
                stored.append(_kill(pg_url, schema, corpus, kill))
                _check_whole(pg_url, schema, corpus)
            _write(corpus.root, 1)
            _complete(_ingest(pg_url, schema, corpus))
            _check_rerun(pg_url, schema, corpus, kills)
        finally:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return stored


@pytest.fixture(scope="module")
def corpus(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    """The corpus and a clean ingest of each version (the older one first, then the final one)."""
    base = tmp_path_factory.mktemp("crash")
    root, settings = base / "corpus", base / "rosetta.toml"
    root.mkdir()
    settings.write_text(SETTINGS)
    partial = Corpus(root, settings, (Snapshot((), {}, []), Snapshot((), {}, [])))
    schemas = [f"crash_clean_v{version}_{uuid.uuid4().hex[:8]}" for version in (0, 1)]
    snapshots = []
    for version, schema in enumerate(schemas):
        _write(root, version)
        _complete(_ingest(pg_url, schema, partial))
        snapshots.append(_snapshot(pg_url, schema))
    assert len(snapshots[1].documents) == DOCUMENTS
    yield Corpus(root, settings, (snapshots[0], snapshots[1]))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_versions_differ_and_documents_have_several_chunks(corpus: Corpus) -> None:
    old, new = (snapshot.documents for snapshot in corpus.clean)
    assert old.keys() == new.keys() and all(old[uri] != new[uri] for uri in new)
    assert sum(len(rows) > 1 for _, rows in new.values()) >= DOCUMENTS // 4


def test_killed_and_rerun_ingests_equal_one_clean_ingest(pg_url: str, corpus: Corpus) -> None:
    # Seed 9 kills during start-up, midway through adding and midway through replacing the older version.
    stored = _soak(pg_url, corpus, _plan(seed=9, runs=2, kills=(2, 2)))
    assert len(stored) == 4 and any(0 < n < DOCUMENTS for n in stored), stored


def test_two_ingests_at_once_into_a_new_collection_equal_one_clean_ingest(pg_url: str, corpus: Corpus,
                                                                         tmp_path: Path) -> None:
    """Both finish (run 0), or one is SIGKILLed at a seeded moment and rerun (run 1); languages with two
    chunks get their own index, so both processes create the same indexes at the end too."""
    settings = tmp_path / "rosetta.toml"
    settings.write_text(SETTINGS + "[retrieval]\nexact_scan_below = 2\n")
    together = replace(corpus, settings=settings)
    rng = random.Random(18)
    _write(corpus.root, 1)
    for run in range(2):
        schema = f"together_{uuid.uuid4().hex[:10]}"
        try:
            first, second = _ingest(pg_url, schema, together), _ingest(pg_url, schema, together)
            if run:
                time.sleep(rng.uniform(1.0, 4.0))
                second.send_signal(signal.SIGKILL)
                second.communicate(timeout=30)
                second = _ingest(pg_url, schema, together)
            _complete(first)
            _complete(second)
            _check_rerun(pg_url, schema, corpus, [])
            languages = _query(pg_url, "SELECT count(DISTINCT language) FROM {s}.chunks", schema)[0][0]
            indexes = _query(pg_url, "SELECT count(*) FROM pg_indexes WHERE schemaname = '{s}' AND indexname "
                             "LIKE 'chunks_dense_c%%\\_%%'", schema)[0][0]
            assert (languages, indexes) == (5, 5)
        finally:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.slow
def test_soak_many_random_kills_and_reruns_equal_one_clean_ingest(pg_url: str, corpus: Corpus) -> None:
    stored = _soak(pg_url, corpus, _plan(seed=20240611, runs=24, kills=(1, 2)))
    assert sum(0 < n < DOCUMENTS for n in stored) >= len(stored) // 2, f"too few kills landed midway: {stored}"
