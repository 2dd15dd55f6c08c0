"""A directory of 60+ hostile and broken files beside good ones in seven languages (tests/hostile.py).

Ingesting it stores every good file with its language, reports every broken one with a reason that names
the problem, lets no exception escape, is idempotent, and (through the CLI, with the real encoder) keeps
its peak memory bounded. The quick corpus refuses the 10 MB single-line file as oversize; the soak test
(``-m slow``) ingests it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.files import uri_of
from rag.config import Config
from rag.ingest import FileReport, IngestReport, IngestStatus
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder
from tests.hostile import (
    MAX_BYTES,
    QUICK_MAX_BYTES,
    Corpus,
    Entry,
    Measured,
    Stored,
    build_corpus,
    run_measured,
)

# Generous: the language detector alone is ~550 MB resident; a zip bomb inflated whole would be 2 GB.
RSS_LIMIT_MB = 1536


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("hostile") / "corpus", QUICK_MAX_BYTES)


def _uri(corpus: Corpus, entry: Entry) -> str:
    return uri_of(corpus.root / entry.path)


def _rows(corpus: Corpus, report: IngestReport) -> dict[str, FileReport]:
    rows = {row.uri: row for row in report.files}
    assert len(rows) == len(report.files), "a source was reported twice"
    return rows


def _mismatches(corpus: Corpus, rows: dict[str, FileReport]) -> list[str]:
    """What differs from the corpus's expectations, one line per entry (empty when all hold)."""
    problems = []
    for entry in corpus.stored:
        row = rows.get(_uri(corpus, entry))
        if row is None or (row.status, row.language, row.error) != (IngestStatus.ADDED, entry.language, None):
            problems.append(f"{entry.path!r} should be added in {entry.language}: {row}")
    for failed in corpus.failed:
        row = rows.get(_uri(corpus, failed))
        if row is None or row.status is not IngestStatus.FAILED or not re.search(failed.reason, row.error or ""):
            problems.append(f"{failed.path!r} should fail with /{failed.reason}/: {row}")
    return problems


def test_the_corpus_is_big_and_mixed(corpus: Corpus) -> None:
    assert len(corpus.failed) >= 50
    assert {entry.language for entry in corpus.stored} >= {"en", "de", "es", "fr", "ja", "ru", "ar"}
    assert {Path(entry.path).suffix for entry in corpus.failed} >= {".pdf", ".docx", ".txt", ".md", ".html"}


def test_good_files_are_stored_bad_ones_reported_and_a_rerun_changes_nothing(config: Config, corpus: Corpus) -> None:
    config = replace(config, ingest=replace(config.ingest, max_bytes=QUICK_MAX_BYTES))
    with Rosetta.open(config, encoder=HashEncoder(dim=64)) as rosetta:
        first = rosetta.ingest([corpus.root])
        before = rosetta.status()
        second = rosetta.ingest([corpus.root], prune=True)
        after = rosetta.status()
    rows = _rows(corpus, first)
    expected = {_uri(corpus, entry) for entry in corpus.listed}
    assert set(rows) == expected  # skipped entries (unsupported, hidden, directory links) are not listed
    assert _mismatches(corpus, rows) == []
    assert all(row.uri in (row.error or "") for row in rows.values() if row.status is IngestStatus.FAILED)
    rerun = {uri: (row.status, row.error) for uri, row in _rows(corpus, second).items()}
    assert rerun == {uri: (IngestStatus.UNCHANGED if row.status is IngestStatus.ADDED else row.status, row.error)
                     for uri, row in rows.items()}
    (collection,) = before.collections
    assert collection.documents == len(corpus.stored)
    assert collection.document_languages == _languages(corpus.stored)
    assert after.collections == before.collections


def _languages(entries: list[Stored]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.language] = counts.get(entry.language, 0) + 1
    return counts


def _cli_ingest(config: Config, corpus: Corpus, max_bytes: int) -> Measured:
    """``rosetta ingest --json`` of the corpus with e5-small, in a subprocess whose peak RSS is measured."""
    assert config.db.url is not None
    env = {**os.environ, "ROSETTA_DATABASE_URL": config.db.url, "ROSETTA_SCHEMA": config.db.schema,
           "ROSETTA_ENCODER": "e5-small", "ROSETTA_DATA_DIR": str(config.db.data_dir)}
    argv = [sys.executable, "-m", "rag.cli", "ingest", str(corpus.root), "--collection", "hostile",
            "--max-bytes", str(max_bytes), "--json"]
    run = run_measured(argv, env)
    print(f"rosetta ingest of the hostile corpus: {run.seconds:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB")
    assert run.returncode == 1, run.stderr  # 1: some sources failed, as they should
    return run


def _assert_reported(corpus: Corpus, run: Measured) -> None:
    rows = {row["uri"]: row for row in json.loads(run.stdout)["files"]}
    assert set(rows) == {_uri(corpus, entry) for entry in corpus.listed}
    for entry in corpus.stored:
        assert (rows[_uri(corpus, entry)]["status"], rows[_uri(corpus, entry)]["language"]) == ("added", entry.language)
    for failed in corpus.failed:
        assert re.search(failed.reason, rows[_uri(corpus, failed)]["error"]), rows[_uri(corpus, failed)]


def test_the_cli_ingests_the_corpus_with_bounded_memory(config: Config, corpus: Corpus) -> None:
    run = _cli_ingest(config, corpus, QUICK_MAX_BYTES)
    _assert_reported(corpus, run)
    assert run.peak_rss_mb < RSS_LIMIT_MB


@pytest.mark.slow
def test_the_cli_ingests_a_10_mb_single_line_with_bounded_memory(config: Config, tmp_path: Path) -> None:
    corpus = build_corpus(tmp_path / "corpus", MAX_BYTES)
    run = _cli_ingest(config, corpus, MAX_BYTES)
    _assert_reported(corpus, run)
    assert run.peak_rss_mb < RSS_LIMIT_MB
