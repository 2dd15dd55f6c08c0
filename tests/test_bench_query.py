"""The query benchmark at a tiny size on the session's embedded Postgres: its behaviour, not its speed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from evals.bench_query import as_json, format_table, report_table
from evals.bench_query_ann import (
    AnnRun,
    Storage,
    Vectors,
    connect,
    drop,
    exact_top_k,
    load,
    measure_size,
    recall,
    synthetic,
)
from evals.bench_query_pipeline import QUESTIONS, measure_pipeline
from rag.config import Config
from rag.types import Storage as DenseStorage
from tests.conftest import DEMO
from tests.fakes import HashEncoder

N, DIM, QUERIES = 2000, 32, 20


@pytest.fixture(scope="module")
def runs(pg_url: str) -> list[AnnRun]:
    """Part 1 once for the module: every storage variant at the tiny size."""
    return measure_size(pg_url, f"bq_{uuid.uuid4().hex[:8]}", N, DIM, QUERIES)


@pytest.fixture
def loaded(pg_url: str, schema: str) -> Iterator[tuple[str, Vectors, Vectors]]:
    """The tiny data set loaded into a fresh schema; yields the schema, vectors and queries."""
    vectors, queries = synthetic(N, QUERIES, DIM)
    with connect(pg_url) as conn:
        load(conn, schema, vectors)
        yield schema, vectors, queries
        drop(conn, schema)


def _numpy_top_k(vectors: Vectors, queries: Vectors, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    distances = 1.0 - queries.astype(np.float64) @ vectors.astype(np.float64).T
    return np.argsort(distances, axis=1)[:, :k], distances


def test_synthetic_vectors_are_seeded_unit_and_clustered() -> None:
    vectors, queries = synthetic(N, QUERIES, DIM, seed=3)
    again, _ = synthetic(N, QUERIES, DIM, seed=3)
    assert vectors.shape == (N, DIM) and queries.shape == (QUERIES, DIM) and vectors.dtype == np.float32
    assert np.array_equal(vectors, again)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarities = queries @ vectors.T
    # Clustered: a query's nearest neighbours stand well above a typical vector.
    assert float(np.sort(similarities, axis=1)[:, -10:].mean()) > float(similarities.mean()) + 0.05


def test_exact_search_agrees_with_numpy_brute_force(pg_url: str, loaded: tuple[str, Vectors, Vectors]) -> None:
    schema, vectors, queries = loaded
    expected, distances = _numpy_top_k(vectors, queries)
    with connect(pg_url) as conn:
        found = exact_top_k(conn, schema, queries)
    for row, ids in enumerate(found):
        tenth = distances[row, expected[row, -1]]
        # Float rounding may swap near-ties at rank 10; anything returned must be as close as numpy's 10th.
        assert len(ids) == 10 and all(distances[row, i] <= tenth + 1e-6 for i in ids)
    assert recall(found, expected.tolist()) >= 0.99


def test_recall_counts_the_true_neighbours_found() -> None:
    assert recall([[1, 2, 3, 4]], [[1, 2, 5, 6]]) == 0.5
    assert recall([[1, 2], [3, 4]], [[1, 2], [5, 6]]) == 0.5


def test_every_variant_runs_and_only_bit_loses_recall(runs: list[AnnRun]) -> None:
    assert [run.storage for run in runs] == list(Storage)
    assert [run.chunks for run in runs] == [N] * len(runs)
    assert all(0 < run.p50_ms <= run.p95_ms and run.build_s > 0 for run in runs)
    vector, halfvec, bit = (run.recall_at_10 for run in runs)
    # Full and half precision find (nearly) all true neighbours; one bit per dimension finds some (0.34 here).
    assert min(vector, halfvec) >= 0.9 and 0.1 < bit < 0.8


def test_bytes_per_chunk_shrink_from_vector_to_halfvec_to_bit(runs: list[AnnRun]) -> None:
    vector, halfvec, bit = runs
    # pg_column_size: 8 header bytes plus 4, 2 or 1/8 bytes per dimension.
    assert (vector.value_bytes, halfvec.value_bytes, bit.value_bytes) == (8 + 4 * DIM, 8 + 2 * DIM, 8 + DIM / 8)
    assert vector.index_bytes_per_chunk > halfvec.index_bytes_per_chunk > bit.index_bytes_per_chunk > 0
    assert vector.bytes_per_chunk > halfvec.bytes_per_chunk > bit.bytes_per_chunk > vector.value_bytes


def test_json_has_the_documented_shape(runs: list[AnnRun]) -> None:
    result = json.loads(json.dumps(as_json(runs, {"chunks": 1})))
    assert set(result) == {"runs", "pipeline", "neutral", "storage", "tuned"} and result["pipeline"] == {"chunks": 1}
    assert result["neutral"] == result["storage"] == result["tuned"] == []
    keys = {"chunks", "storage", "p50_ms", "p95_ms", "recall@10", "bytes_per_chunk"}
    assert all(keys <= set(run) for run in result["runs"])
    assert [run["storage"] for run in result["runs"]] == ["vector", "halfvec", "bit"]
    assert format_table(result["runs"]).splitlines()[0].split()[:3] == ["chunks", "storage", "p50_ms"]


def test_pipeline_times_every_mode_cold_and_warm(config: Config) -> None:
    encoder = HashEncoder()
    pipeline = measure_pipeline(config, DEMO, QUESTIONS[:4], encoder=encoder)
    assert [(run["mode"], run["cache"]) for run in pipeline["runs"]] == [
        *((mode, cache) for mode in ("dense", "sparse", "hybrid") for cache in ("cold", "warm")),
        ("hybrid-plain", "warm"), ("hybrid-plain-in-sql", "warm")]
    assert all(0 < run["p50_ms"] <= run["p95_ms"] for run in pipeline["runs"])
    assert pipeline["chunks"] > 5 and pipeline["questions"] == 4 and pipeline["encoder"] == "hash-fake"
    # Each cold pass encoded every question again; the warm passes were served from the cache.
    encoded = [text for call in encoder.calls for text in call]
    assert all(encoded.count(question) == 3 + 1 for question in QUESTIONS[:4])


def test_questions_cover_five_languages_without_repeats() -> None:
    assert len(QUESTIONS) == len(set(QUESTIONS)) == 30


def test_report_shows_both_tables(runs: list[AnnRun]) -> None:
    pipeline = {"chunks": 7, "questions": 1, "encoder": "hash-fake", "encode_p50_ms": 1.0, "encode_p95_ms": 2.0,
                "runs": [{"mode": "dense", "cache": "cold", "p50_ms": 1.5, "p95_ms": 2.5}]}
    lines = report_table(as_json(runs, pipeline), "ANN").splitlines()
    assert lines[0] == "ANN" and [line.split()[1] for line in lines[2:5]] == ["vector", "halfvec", "bit"]
    assert lines[6].startswith("Pipeline (7 chunks, 1 questions, encoder hash-fake")
    assert lines[8].split() == ["dense", "cold", "1.5", "2.5"]


def test_the_language_neutral_leg_finds_what_exact_neutral_scoring_finds(pg_url: str) -> None:
    from evals.bench_query_neutral import measure as measure_neutral
    from evals.bench_query_neutral import multilingual

    docs, doc_languages, queries, query_languages = multilingual(600, 5, 32)
    assert docs.shape == (600, 32) and set(doc_languages) == {"en", "de", "ja", "zh", "th"}
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    # Plain cosine prefers the query's language: that is the bias the neutral leg has to undo.
    same = [doc_languages[int(np.argmax(docs @ q))] == code for q, code in zip(queries, query_languages)]
    assert sum(same) >= 4
    runs = measure_neutral(pg_url, 600, 20, 32, 40)
    assert [run.scan for run in runs] == ["hnsw", "hnsw + exact small"]
    assert all(run.recall_at_10 >= 0.97 and 0 < run.p50_ms <= run.p95_ms for run in runs)
    assert set(runs[0].as_json()) == {"chunks", "scan", "recall@10", "p50_ms", "p95_ms", "plain_p50_ms",
                                      "plain_p95_ms"}


def test_the_storage_part_sweeps_each_option_through_the_store(pg_url: str) -> None:
    from evals.bench_query_storage import measure as measure_storage

    runs = measure_storage(pg_url, 1200, 10, 32, ef_sweep=(40, 400), factor_sweep=(4, 64))
    assert [(r.storage, r.ef_search, r.rescore_factor) for r in runs] == [
        (DenseStorage.VECTOR, 40, None), (DenseStorage.VECTOR, 400, None), (DenseStorage.HALFVEC, 40, None),
        (DenseStorage.HALFVEC, 400, None), (DenseStorage.BIT_RESCORE, 100, 4), (DenseStorage.BIT_RESCORE, 100, 64)]
    assert all(r.chunks == 1200 and r.dim == 32 and 0 <= r.recall_at_10 <= 1 and r.build_s > 0 for r in runs)
    assert all(0 < r.p50_ms <= r.p95_ms for r in runs)
    index = {r.storage: r.index_bytes_per_chunk for r in runs}
    assert index[DenseStorage.VECTOR] > index[DenseStorage.HALFVEC] > index[DenseStorage.BIT_RESCORE] > 0
    # Rescoring 640 candidates of 1,200 by the full vectors is nearly exact; 40 of them are not.
    assert runs[5].recall_at_10 >= 0.95 and runs[5].recall_at_10 > runs[4].recall_at_10


def test_tuned_picks_the_fastest_setting_that_reaches_the_recall_target() -> None:
    from evals.bench_query_storage import StorageRun, tuned

    def run(storage: DenseStorage, ef: int, recall: float, p50: float) -> StorageRun:
        return StorageRun(100, 8, storage, ef, None, recall, p50, p50, 1.0, 1.0, 0.1)

    runs = [run(DenseStorage.VECTOR, 40, 0.95, 1.0), run(DenseStorage.VECTOR, 100, 0.98, 3.0), run(DenseStorage.VECTOR, 200, 0.99, 2.0),
            run(DenseStorage.HALFVEC, 40, 0.9, 1.0)]
    assert tuned(runs) == [{"chunks": 100, "dim": 8, "storage": "vector", "run": runs[2].as_json()},
                           {"chunks": 100, "dim": 8, "storage": "halfvec", "run": None}]
