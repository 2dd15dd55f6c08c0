"""Part 4 of the query benchmark: the dense storage options (``vector``, ``halfvec``, ``bit+rescore``) through
Rosetta's own tables and ``PgStore.dense_search``, over a sweep of ef_search and rescoring candidates.

N synthetic embeddings (the multilingual mixture of ``bench_query_neutral``: five languages, so the
per-language indexes are built as an ingest builds them) are loaded once into one collection. For each
option in turn the collection's row is switched to it and its dense indexes (collection-wide and per
language) are rebuilt, timed; then for each setting (``ef_search`` for vector and halfvec, the rescoring
factor for bit+rescore, whose candidate pool is factor x k) the queries run through
``PgStore.dense_search`` (k = 10, no filter) and are scored against the exact top 10 computed in numpy.

``bytes_per_chunk`` = average ``pg_column_size`` of the full ``dense`` vector (every option keeps it: the
language statistics, exact scans and rescoring read it) + the collection-wide dense index's size / N;
``index_bytes_per_chunk`` is the index alone. ``tuned`` names, per option, the fastest setting (p50) whose
recall@10 reaches the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evals.bench_query_ann import K, Vectors, percentiles
from evals.bench_query_neutral import load, multilingual
from rag.store import PgStore
from rag.store.database import Database
from rag.store.schema import collection_index_names, create_collection_indexes, language_indexes
from rag.types import Collection, Storage

SCHEMA = "bench_storage"
TARGET_RECALL = 0.97
EF_SWEEP = (40, 100, 200, 400)
FACTOR_SWEEP = (4, 8, 16, 32, 64)
WARMUP = 5
_SWITCH = "UPDATE {schema}.collections SET storage = %(storage)s WHERE id = %(id)s"
_COLUMN_BYTES = "SELECT avg(pg_column_size(dense))::float8 FROM {schema}.chunks WHERE collection_id = %(id)s"
_INDEX_BYTES = "SELECT pg_relation_size(format('%%I.%%I', %(schema)s::text, %(index)s::text)::regclass)"


@dataclass(frozen=True, slots=True)
class StorageRun:
    """One option x setting at one size: recall@10 against exact, latency, bytes, index build time."""

    chunks: int
    dim: int
    storage: Storage
    ef_search: int
    rescore_factor: int | None
    recall_at_10: float
    p50_ms: float
    p95_ms: float
    bytes_per_chunk: float
    index_bytes_per_chunk: float
    build_s: float

    def as_json(self) -> dict[str, Any]:
        """The run as a JSON object (storage by name)."""
        return {"chunks": self.chunks, "dim": self.dim, "storage": self.storage.value, "ef_search": self.ef_search,
                "rescore_factor": self.rescore_factor, "recall@10": self.recall_at_10, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "bytes_per_chunk": self.bytes_per_chunk,
                "index_bytes_per_chunk": self.index_bytes_per_chunk, "build_s": self.build_s}


def tuned(runs: list[StorageRun], target: float = TARGET_RECALL) -> list[dict[str, Any]]:
    """Per size and option, the run with the lowest p50 among those reaching ``target`` recall (None when no
    setting does)."""
    groups: dict[tuple[int, int, Storage], list[StorageRun]] = {}
    for run in runs:
        groups.setdefault((run.chunks, run.dim, run.storage), []).append(run)
    picked = []
    for (chunks, dim, storage), group in groups.items():
        good = [r for r in group if r.recall_at_10 >= target]
        best = min(good, key=lambda r: (r.p50_ms, r.ef_search)) if good else None
        picked.append({"chunks": chunks, "dim": dim, "storage": storage.value,
                       "run": best.as_json() if best else None})
    return picked


def exact_ids(vectors: Vectors, queries: Vectors, k: int = K) -> list[list[str]]:
    """Each query's true top ``k`` chunk ids by cosine (the vectors are unit length)."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    return [[f"c{i}" for i in np.argsort(-row, kind="stable")[:k]] for row in scores]


def rebuild(store: PgStore, collection: Collection, storage: Storage) -> tuple[Collection, float]:
    """Switch the collection to ``storage`` and rebuild its dense indexes (collection-wide and per language);
    return it and the build seconds."""
    dense, _ = collection_index_names(collection.id)
    with store.pool.connection() as conn:
        for name in [dense, *language_indexes(conn, store.schema, collection.id)]:
            conn.execute(f"DROP INDEX IF EXISTS {store.schema}.{name}")
        conn.execute(_SWITCH.format(schema=store.schema), {"storage": storage.value, "id": collection.id})
        conn.commit()
    switched = replace(collection, storage=storage)
    started = time.perf_counter()
    with store.pool.connection() as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        create_collection_indexes(conn, store.schema, collection.id, collection.dim, collection.sparse_dim, storage)
    store.ensure_language_indexes(switched, 1000)
    build_s = time.perf_counter() - started
    with store.pool.connection() as conn:
        conn.execute(f"ANALYZE {store.schema}.chunks")
    return switched, build_s


def _bytes(store: PgStore, collection: Collection) -> tuple[float, float]:
    dense, _ = collection_index_names(collection.id)
    with store.pool.connection() as conn:
        column = conn.execute(_COLUMN_BYTES.format(schema=store.schema), {"id": collection.id}).fetchone()
        index = conn.execute(_INDEX_BYTES, {"schema": store.schema, "index": dense}).fetchone()
    assert column is not None and index is not None
    n = max(1, int(store.status(collection).chunks))
    return round(float(column[0]) + float(index[0]) / n, 1), round(float(index[0]) / n, 1)


def _search(store: PgStore, collection: Collection, queries: Vectors, ef: int, factor: int
            ) -> tuple[list[list[str]], list[float]]:
    for q in queries[:WARMUP]:
        store.dense_search(collection, q, K, None, ef, factor)
    found, times = [], []
    for q in queries:
        started = time.perf_counter()
        hits = store.dense_search(collection, q, K, None, ef, factor)
        times.append((time.perf_counter() - started) * 1000)
        found.append([h.chunk.id for h in hits])
    return found, times


def settings(storage: Storage, ef_sweep: tuple[int, ...], factor_sweep: tuple[int, ...]
             ) -> list[tuple[int, int | None]]:
    """The (ef_search, rescore_factor) pairs swept for ``storage``: ef for vector and halfvec, the factor (with
    ef_search 100, raised to the pool by the store) for bit+rescore."""
    if storage is Storage.BIT_RESCORE:
        return [(100, factor) for factor in factor_sweep]
    return [(ef, None) for ef in ef_sweep]


def measure(url: str, n: int, n_queries: int, dim: int, ef_sweep: tuple[int, ...] = EF_SWEEP,
            factor_sweep: tuple[int, ...] = FACTOR_SWEEP, storages: tuple[Storage, ...] = tuple(Storage)
            ) -> list[StorageRun]:
    """Load ``n`` chunks once, then each option's indexes and sweep; drops the schema."""
    docs, languages, queries, _ = multilingual(n, n_queries, dim)
    truth = exact_ids(docs, queries)
    database = Database.open(url, Path("."))
    runs = []
    try:
        store = PgStore(database.pool, SCHEMA)
        store.migrate()
        collection = load(store, docs, languages, indexes=False)
        for storage in storages:
            collection, build_s = rebuild(store, collection, storage)
            total, index = _bytes(store, collection)
            for ef, factor in settings(storage, ef_sweep, factor_sweep):
                found, times = _search(store, collection, queries, ef, factor or 1)
                recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
                runs.append(StorageRun(n, dim, storage, ef, factor, round(recall, 4), *percentiles(times),
                                       total, index, round(build_s, 2)))
        with database.pool.connection() as conn:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        database.close()
    return runs
