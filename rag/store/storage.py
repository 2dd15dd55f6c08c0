"""Dense storage options: what a collection's HNSW indexes hold, and the ORDER BY that walks them.

The chunks table always keeps the full ``vector``: the language statistics (rag/centering.py), exact scans
and every score read it. The option only changes the index key: the vector as it is, cast to ``halfvec``
(half the bytes), or its sign bits (``binary_quantize``, 1/32 of them) searched by Hamming distance, whose
``rescore_factor`` x k candidates are then ordered by the exact cosine. Each statement takes an index's
candidates in a subquery and orders them by the exact distance outside it, so scores never depend on the
option. Chosen per collection at creation (``collections.storage``, migration 5).
"""

from __future__ import annotations

from psycopg import sql

from rag.types import Storage

# What a new collection gets when nothing asks for another. On the synthetic sweep (evals/bench_query.py part
# 4, each option at a setting reaching recall@10 0.97 at 100k chunks) bit+rescore was the fastest, but real
# embeddings share a large common direction and their sign bits lose neighbours: on e5-small's chunks 8 x k
# Hamming candidates hold 0.65 of the exact top 10 in a pool of 2,500 (evals/bench_storage_real.py; 0.98
# with the bits taken after centring, not built). halfvec finds the same top 10 as vector on those vectors
# (1.000), at 3/4 of the bytes per chunk at 384-d and 1/2 at 1024-d, and was faster at 1024-d (p50 27.5 ms
# against 48.2) and about as fast at 384-d (13.0 against 11.7). README, "Query latency and ANN storage".
DEFAULT_STORAGE = Storage.HALFVEC
# pgvector refuses hnsw.ef_search above 1000; a larger candidate pool comes from its iterative scan.
MAX_EF_SEARCH = 1000
# hnsw.ef_search per storage when retrieval.ef_search is not set: of the swept values (40, 100, 200, 400),
# the one whose recall@10 reached 0.97 at 100k chunks, 384-d and 1024-d, in two builds each (halfvec: 0.9695
# in one), through the index: at 1024-d the planner chose a full scan instead for vector at 100 and halfvec
# at 400 (recall 1.0 at p50 1.2 s). bit+rescore's is raised to its candidate pool. evals/bench_query.py part
# 4, README "Query latency and ANN storage". The sparse index uses 100.
EF_SEARCH = {Storage.VECTOR: 200, Storage.HALFVEC: 200, Storage.BIT_RESCORE: 100}
SPARSE_EF_SEARCH = 100

# The key of a collection's (or one language's) dense HNSW index over the untyped ``dense`` column.
_INDEX_KEYS = {
    Storage.VECTOR: "(dense::vector({dim})) vector_cosine_ops",
    Storage.HALFVEC: "(dense::halfvec({dim})) halfvec_cosine_ops",
    Storage.BIT_RESCORE: "(binary_quantize(dense)::bit({dim})) bit_hamming_ops",
}
# The ORDER BY expression the planner matches to that index; ``{query}`` is the query vector's parameter.
_INDEX_ORDERS = {
    Storage.VECTOR: "c.dense::vector({dim}) <=> {query}::vector({dim})",
    Storage.HALFVEC: "c.dense::halfvec({dim}) <=> {query}::halfvec({dim})",
    Storage.BIT_RESCORE: "binary_quantize(c.dense)::bit({dim}) <~> binary_quantize({query}::vector({dim}))",
}


def index_key(storage: Storage, dim: int) -> sql.Composed:
    """The HNSW index key (expression and operator class) for ``storage`` at ``dim`` dimensions."""
    return sql.SQL(_INDEX_KEYS[storage]).format(dim=sql.Literal(int(dim)))


def index_order(storage: Storage, dim: int, query: str) -> sql.Composed:
    """The ORDER BY expression that scans ``storage``'s index with the query vector bound as ``query``."""
    return sql.SQL(_INDEX_ORDERS[storage]).format(dim=sql.Literal(int(dim)), query=sql.Placeholder(query))


def candidates(storage: Storage, k: int, rescore_factor: int) -> int:
    """How many rows the index scan returns for ``k`` results: ``rescore_factor`` x k for sign bits (their
    Hamming distances tie often and rank coarsely), else k."""
    return k * rescore_factor if storage is Storage.BIT_RESCORE else k


def ef_search_for(storage: Storage, ef_search: int | None) -> int:
    """``ef_search``, or the value tuned for ``storage`` when it is None."""
    return EF_SEARCH[storage] if ef_search is None else ef_search


def scan_ef(storage: Storage, ef_search: int, pool: int) -> int:
    """``hnsw.ef_search`` for a scan returning ``pool`` rows: raised to the pool for sign bits (a scan returns
    at most ef_search rows before iterating), within pgvector's limit."""
    return min(MAX_EF_SEARCH, max(ef_search, pool)) if storage is Storage.BIT_RESCORE else ef_search


def storage_mismatch(name: str, stored: Storage, asked: Storage) -> str:
    """The message refusing ``asked`` for collection ``name`` created with ``stored``."""
    return (f"collection {name!r} stores its dense vectors as {stored.value}; it cannot be ingested into with "
            f"storage {asked.value} (a collection's storage is chosen when it is created). Drop --storage "
            f"(ROSETTA_STORAGE, ingest.storage) to use the collection's own, or choose another --collection")
