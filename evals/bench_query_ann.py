"""Part 1 of the query benchmark: HNSW storage variants (vector, halfvec, binary + exact re-ranking) on
synthetic embeddings: recall@10 against an exact scan, latency, build time and bytes per chunk.

``evals/bench_query.py`` describes the benchmark and runs it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from rag.store.database import ensure_pgvector

Vectors = npt.NDArray[np.float32]
K = 10
WARMUP = 5
ANN_SCHEMA = "bench_ann"
# The mixture: unit centres, each cluster spread along its own 16 random directions plus a little
# isotropic noise, so neighbourhoods have structure (isotropic noise would make ANN recall meaningless).
CLUSTERS, RANK, SPREAD, NOISE = 256, 16, 0.7, 0.2
# Real embeddings share one dominant direction: e5-small passages of demo/manuals have a mean vector of
# norm 0.91 and pairwise cosines of 0.75-0.94. Adding 2x a shared unit vector to each unit mixture point
# gives a mean norm near 0.89 and unrelated-pair cosines near 0.8. It matters for binary quantization,
# whose sign bits then mostly encode the shared direction; 0 gives the plain mixture.
SHARED = 2.0

_CREATE_SCHEMA = "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
_DROP_SCHEMA = "DROP SCHEMA IF EXISTS {schema} CASCADE"
_CREATE_TABLE = "CREATE TABLE {schema}.items (id integer PRIMARY KEY, embedding vector({dim}) NOT NULL)"
_COPY_ITEMS = "COPY {schema}.items (id, embedding) FROM STDIN WITH (FORMAT BINARY)"
_ANALYZE = "ANALYZE {schema}.items"
# Builds the graph in memory (100k x 384 needs a few hundred MB) with one worker beside the leader: 2 cores.
_BUILD_SETTINGS = "SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 1"
_SET_EF_SEARCH = "SELECT set_config('hnsw.ef_search', %(ef)s, false)"
_NO_INDEX_SCAN = "SET LOCAL enable_indexscan = off"
_EXACT = "SELECT id FROM {schema}.items ORDER BY embedding <=> %(q)s::vector({dim}) LIMIT %(k)s"
_DROP_INDEX = "DROP INDEX {schema}.items_hnsw"
_INDEX_BYTES = "SELECT pg_relation_size(format('%%I.items_hnsw', %(schema)s::text)::regclass)"
_COLUMN_BYTES = "SELECT sum(pg_column_size(embedding))::bigint FROM {schema}.items"
_COUNT = "SELECT count(*) FROM {schema}.items"


class Storage(Enum):
    """What the HNSW graph stores for each chunk."""

    VECTOR = "vector"
    HALFVEC = "halfvec"
    BIT = "bit"


_HNSW = "CREATE INDEX items_hnsw ON {schema}.items USING hnsw ({key}) WITH (m = 16, ef_construction = 64)"
_INDEX_KEYS = {
    Storage.VECTOR: "embedding vector_cosine_ops",
    Storage.HALFVEC: "(embedding::halfvec({dim})) halfvec_cosine_ops",
    Storage.BIT: "(binary_quantize(embedding)::bit({dim})) bit_hamming_ops",
}
_VALUE_BYTES = {
    Storage.VECTOR: "SELECT avg(pg_column_size(embedding))::float8 FROM {schema}.items",
    Storage.HALFVEC: "SELECT avg(pg_column_size(embedding::halfvec({dim})))::float8 FROM {schema}.items",
    Storage.BIT: "SELECT avg(pg_column_size(binary_quantize(embedding)::bit({dim})))::float8 FROM {schema}.items",
}
_SEARCHES = {
    Storage.VECTOR: _EXACT,
    Storage.HALFVEC: """SELECT id FROM {schema}.items
                        ORDER BY embedding::halfvec({dim}) <=> %(q)s::halfvec({dim}) LIMIT %(k)s""",
    # pgvector's documented re-ranking pattern: Hamming candidates from the index, exact cosine on top.
    Storage.BIT: """SELECT id FROM (
                        SELECT id, embedding FROM {schema}.items
                        ORDER BY binary_quantize(embedding)::bit({dim}) <~> binary_quantize(%(q)s::vector({dim}))
                        LIMIT %(pool)s) AS candidates
                    ORDER BY embedding <=> %(q)s::vector({dim}) LIMIT %(k)s""",
}


@dataclass(frozen=True, slots=True)
class AnnRun:
    """One size x storage variant of part 1."""

    chunks: int
    storage: Storage
    recall_at_10: float
    p50_ms: float
    p95_ms: float
    bytes_per_chunk: float
    index_bytes_per_chunk: float
    value_bytes: float
    build_s: float
    ef_search: int
    candidates: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The run as a JSON object (``recall@10``, storage by name)."""
        return {"chunks": self.chunks, "storage": self.storage.value, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "recall@10": self.recall_at_10, "bytes_per_chunk": self.bytes_per_chunk,
                "index_bytes_per_chunk": self.index_bytes_per_chunk, "value_bytes": self.value_bytes,
                "build_s": self.build_s, "ef_search": self.ef_search, "candidates": self.candidates}


def _unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    unit: npt.NDArray[np.float64] = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return unit


def synthetic(n: int, n_queries: int, dim: int, seed: int = 0, shared: float = SHARED) -> tuple[Vectors, Vectors]:
    """``n`` unit vectors and ``n_queries`` query vectors drawn independently from one seeded mixture."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((CLUSTERS, dim)))
    direction = _unit(rng.standard_normal(dim))
    bases = rng.standard_normal((CLUSTERS, RANK, dim)) * (SPREAD / np.sqrt(RANK * dim))
    total = n + n_queries
    labels = rng.integers(CLUSTERS, size=total)
    points = centres[labels] + rng.standard_normal((total, dim)) * (NOISE / np.sqrt(dim))
    latent = rng.standard_normal((total, RANK))
    for cluster in range(CLUSTERS):  # per cluster: bases[labels] at once would need N x RANK x dim floats
        rows = np.flatnonzero(labels == cluster)
        points[rows] += latent[rows] @ bases[cluster]
    vectors = _unit(_unit(points) + shared * direction).astype(np.float32)
    return vectors[:n], vectors[n:]


def _sql(statement: str, schema: str, dim: int = 0) -> sql.Composed:
    return sql.SQL(statement).format(schema=sql.Identifier(schema), dim=sql.Literal(int(dim)))


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection with pgvector's types registered (creating the extension if needed)."""
    from pgvector.psycopg import register_vector

    ensure_pgvector(url)
    conn = psycopg.connect(url, autocommit=True)
    register_vector(conn)
    return conn


def load(conn: psycopg.Connection[Any], schema: str, vectors: Vectors) -> None:
    """(Re)create ``schema`` with one table ``items(id, embedding vector(dim))`` filled by binary COPY."""
    conn.execute(_sql(_CREATE_SCHEMA, schema))
    conn.execute(_sql(_CREATE_TABLE, schema, vectors.shape[1]))
    with conn.cursor() as cursor, cursor.copy(_sql(_COPY_ITEMS, schema)) as copy:
        copy.set_types(["int4", "vector"])
        for item_id, vector in enumerate(vectors):
            copy.write_row((item_id, vector))
    conn.execute(_sql(_ANALYZE, schema))


def drop(conn: psycopg.Connection[Any], schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    conn.execute(_sql(_DROP_SCHEMA, schema))


def exact_top_k(conn: psycopg.Connection[Any], schema: str, queries: Vectors, k: int = K) -> list[list[int]]:
    """Each query's exact top ``k`` ids by cosine distance, by a sequential scan (index scans off)."""
    statement = _sql(_EXACT, schema, queries.shape[1])
    with conn.transaction():
        conn.execute(_NO_INDEX_SCAN)
        return [[int(row[0]) for row in conn.execute(statement, {"q": q, "k": k})] for q in queries]


def build_index(conn: psycopg.Connection[Any], schema: str, storage: Storage, dim: int) -> float:
    """Create the variant's HNSW index ``items_hnsw``; return the build time in seconds."""
    key = sql.SQL(_INDEX_KEYS[storage]).format(dim=sql.Literal(int(dim)))
    conn.execute(_BUILD_SETTINGS)
    started = time.perf_counter()
    conn.execute(sql.SQL(_HNSW).format(schema=sql.Identifier(schema), key=key))
    return time.perf_counter() - started


def timed_search(conn: psycopg.Connection[Any], schema: str, storage: Storage, queries: Vectors,
                 k: int = K, candidates: int = 4 * K) -> tuple[list[list[int]], list[float]]:
    """Each query's ids from the variant's index, and its client wall time in ms (after warm-up queries)."""
    statement = _sql(_SEARCHES[storage], schema, queries.shape[1])
    params: dict[str, Any] = {"k": k, "pool": candidates}
    for q in queries[:WARMUP]:  # also lets psycopg prepare the statement (its threshold is 5 runs)
        conn.execute(statement, {**params, "q": q}).fetchall()
    found, times = [], []
    for q in queries:
        started = time.perf_counter()
        rows = conn.execute(statement, {**params, "q": q}).fetchall()
        times.append((time.perf_counter() - started) * 1000)
        found.append([int(row[0]) for row in rows])
    return found, times


def recall(found: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    """Mean fraction of each true top-k found."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def percentiles(times: Sequence[float]) -> tuple[float, float]:
    """p50 and p95 of ``times``, rounded to 0.01."""
    p50, p95 = np.percentile(times, [50, 95])
    return round(float(p50), 2), round(float(p95), 2)


def _scalar(conn: psycopg.Connection[Any], statement: sql.Composed | str, params: dict[str, Any]) -> float:
    row = conn.execute(statement, params).fetchone()
    assert row is not None
    return float(row[0])


def measure_variant(conn: psycopg.Connection[Any], schema: str, storage: Storage, queries: Vectors,
                    truth: Sequence[Sequence[int]], ef_search: int = 40, candidates: int = 4 * K) -> AnnRun:
    """Build one variant's index, time and score its searches, measure its bytes, then drop the index."""
    dim = queries.shape[1]
    n = int(_scalar(conn, _sql(_COUNT, schema), {}))
    build_s = build_index(conn, schema, storage, dim)
    # The binary variant's candidate pool must fit in one index scan, which returns at most ef_search rows.
    bit = storage is Storage.BIT
    ef = max(ef_search, candidates) if bit else ef_search
    conn.execute(_SET_EF_SEARCH, {"ef": str(ef)})
    found, times = timed_search(conn, schema, storage, queries, K, candidates)
    index_bytes = _scalar(conn, _INDEX_BYTES, {"schema": schema})
    column_bytes = _scalar(conn, _sql(_COLUMN_BYTES, schema), {})
    value_bytes = _scalar(conn, _sql(_VALUE_BYTES[storage], schema, dim), {})
    conn.execute(_sql(_DROP_INDEX, schema))
    p50, p95 = percentiles(times)
    return AnnRun(n, storage, round(recall(found, truth), 4), p50, p95, round((column_bytes + index_bytes) / n, 1),
                  round(index_bytes / n, 1), round(value_bytes, 1), round(build_s, 2), ef, candidates if bit else None)


def measure_size(url: str, schema: str, n: int, dim: int, n_queries: int, ef_search: int = 40,
                 candidates: int = 4 * K, seed: int = 0) -> list[AnnRun]:
    """Part 1 at one size: load, exact ground truth, then each storage variant in turn; drops ``schema``."""
    vectors, queries = synthetic(n, n_queries, dim, seed)
    with connect(url) as conn:
        load(conn, schema, vectors)
        try:
            truth = exact_top_k(conn, schema, queries)
            return [measure_variant(conn, schema, storage, queries, truth, ef_search, candidates)
                    for storage in Storage]
        finally:
            drop(conn, schema)
