"""The load benchmark at a tiny size on the session's embedded Postgres: its behaviour, not its speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evals.bench_load import run
from evals.bench_load_clients import Settings, Workers
from evals.bench_load_corpus import LANGUAGES, plan_base, synthetic_document, vocabularies
from rag.chunk import chunk_document
from rag.config import Config
from rag.encoders.hashing import HashingEncoder
from rag.lang import LanguageDetector
from rag.types import Encoder

CHUNKS = 300
RUN_KEYS = {"clients", "workers", "searches", "searches_per_s", "p50_ms", "p95_ms", "p99_ms", "errors",
            "ingested_documents", "ingested_chunks", "expected_documents", "expected_chunks", "documents",
            "chunks", "counts_ok", "load_before", "load_after"}


@pytest.fixture(scope="module")
def vocab() -> Any:
    """The five languages' vocabularies, built once."""
    return vocabularies()


def _check_run(run: dict[str, Any], clients: int, base: dict[str, Any]) -> None:
    assert RUN_KEYS <= set(run) and run["clients"] == clients
    assert run["errors"] == 0 and run["ingest_errors"] == 0 and run["searches"] > 0
    assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"] <= run["max_ms"]
    # What SQL counted is the base plus exactly what the concurrent writer added.
    assert run["ingested_documents"] > 0 and run["ingested_chunks"] >= run["ingested_documents"]
    assert (run["documents"], run["chunks"]) == (base["documents"] + run["ingested_documents"],
                                                 base["chunks"] + run["ingested_chunks"])
    assert (run["expected_documents"], run["expected_chunks"]) == (run["documents"], run["chunks"])
    assert run["counts_ok"] is True


def test_hashing_encoder_is_a_deterministic_encoder() -> None:
    encoder: Encoder = HashingEncoder()
    first, second = encoder.encode_passages(["Der Luftfilter wird gereinigt.", "空气过滤器多久清洁一次？"])
    again = encoder.encode_passages(["Der Luftfilter wird gereinigt."])[0]
    assert first.dense.shape == (384,) and np.isclose(float(np.linalg.norm(first.dense)), 1.0)
    assert np.array_equal(first.dense, again.dense) and first.sparse == again.sparse
    query = encoder.encode_queries(["Luftfilter gereinigt"])[0]
    # Shared terms make a query nearer to the passage holding them than to an unrelated one.
    assert float(query.dense @ first.dense) > float(query.dense @ second.dense)
    assert encoder.count_tokens("Der Luftfilter") == 4 and encoder.lexical_idf


def test_synthetic_documents_are_deterministic_and_in_each_language(vocab: Any) -> None:
    documents = [synthetic_document(f"x://{i}", i, vocab) for i in range(len(LANGUAGES))]
    assert [d.text for d in documents] == [synthetic_document(f"x://{i}", i, vocab).text for i in range(5)]
    detector = LanguageDetector.load(LANGUAGES)
    assert [detector.detect(d.text[:2000]) for d in documents] == list(LANGUAGES)


def test_plan_makes_exactly_the_chunks_asked_for(vocab: Any) -> None:
    encoder = HashingEncoder()
    plan = plan_base(CHUNKS, vocab, encoder, 256)
    assert plan.chunks == CHUNKS and plan.corpus(vocab, 0).chunk_count(encoder, 256) == CHUNKS
    last = plan.corpus(vocab, 0).load(f"bench-load://base/{plan.documents - 1:07d}")[0]
    assert len(chunk_document(last, encoder.count_tokens, 256)) >= 1


def test_threads_run_counts_every_row_and_fails_nothing(config: Config, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = run(config, CHUNKS, [1, 2], Settings(seconds=1.0, warmup=1, batch=2), out=tmp_path)
    assert set(result) == {"note", "machine", "settings", "base", "runs"}
    assert "query encoding by a real model" in result["note"] and result["machine"]["nproc"] >= 1
    base = result["base"]
    assert (base["chunks"], base["reused"]) == (CHUNKS, False)
    for run_, clients in zip(result["runs"], [1, 2], strict=True):
        assert run_["workers"] == "threads"
        _check_run(run_, clients, base)
    assert json.loads((tmp_path / "load.json").read_text()) == json.loads(json.dumps(result))
    assert (tmp_path / "load.png").stat().st_size > 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["N", "searches", "search/s"])
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["1", "2"]

    # A later run finds the base as built, without the documents the first run's writer added.
    again = run(config, CHUNKS, [1], Settings(seconds=0.5, warmup=1, batch=2))
    assert (again["base"]["reused"], again["base"]["resumed_from_chunks"]) == (True, CHUNKS)
    _check_run(again["runs"][0], 1, again["base"])


def test_process_clients_share_the_server_and_fail_nothing(config: Config) -> None:
    result = run(config, CHUNKS, [2], Settings(seconds=1.0, warmup=1, batch=2, workers=Workers.PROCESSES))
    (only,) = result["runs"]
    assert only["workers"] == "processes"
    _check_run(only, 2, result["base"])
