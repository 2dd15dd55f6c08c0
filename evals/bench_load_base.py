"""The load benchmark's base collection in the database: built once through the real ingest pipeline (HNSW
indexes dropped, then built once), reused while its counts match, and reset to the base before each run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from evals.bench_load_corpus import BasePlan, Vocabulary
from rag.ingest import Target, run_ingest
from rag.rosetta import Rosetta
from rag.store.schema import collection_index_names, create_collection_indexes
from rag.types import Collection

COLLECTION = "bench-load"
LIVE_PREFIX = "bench-load://live/"
_COUNTS = """
    SELECT (SELECT count(*) FROM {schema}.documents WHERE collection_id = c.id),
           (SELECT count(*) FROM {schema}.chunks WHERE collection_id = c.id),
           (SELECT count(*) FROM {schema}.documents WHERE collection_id = c.id AND uri LIKE %(live)s),
           (SELECT count(*) FROM {schema}.chunks k JOIN {schema}.documents d ON d.id = k.document_id
             WHERE k.collection_id = c.id AND d.uri LIKE %(live)s)
    FROM {schema}.collections c WHERE c.name = %(name)s
"""
_DELETE_LIVE = """
    DELETE FROM {schema}.documents
    WHERE collection_id = (SELECT id FROM {schema}.collections WHERE name = %(name)s) AND uri LIKE %(live)s
"""
_DROP_COLLECTION = "DELETE FROM {schema}.collections WHERE name = %(name)s"
_VACUUM = "VACUUM (ANALYZE) {schema}.chunks, {schema}.documents"
_DROP_INDEX = "DROP INDEX IF EXISTS {schema}.{index}"
# The HNSW graphs of 100k chunks are built in memory (a few hundred MB each), with one worker beside the
# leader: 2 cores.
_BUILD_SETTINGS = "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1"


@dataclass(frozen=True, slots=True)
class Counts:
    """A collection's rows, and how many of them belong to documents under the live prefix."""

    documents: int
    chunks: int
    live_documents: int
    live_chunks: int


def _sql(statement: str, schema: str) -> sql.Composed:
    return sql.SQL(statement).format(schema=sql.Identifier(schema))


def count_rows(rosetta: Rosetta, collection: str = COLLECTION) -> Counts:
    """The collection's documents and chunks, counted in SQL (zeros when it does not exist)."""
    with rosetta.database.pool.connection() as conn:
        row = conn.execute(_sql(_COUNTS, rosetta.store.schema), {"name": collection, "live": LIVE_PREFIX + "%"}
                           ).fetchone()
    return Counts(*(int(value) for value in row)) if row else Counts(0, 0, 0, 0)


def reset_live(rosetta: Rosetta, collection: str = COLLECTION, vacuum: bool = True) -> float:
    """Delete earlier runs' live documents (so each run starts from the base); return the seconds taken."""
    started = time.perf_counter()
    with rosetta.database.pool.connection() as conn:
        deleted = conn.execute(_sql(_DELETE_LIVE, rosetta.store.schema),
                               {"name": collection, "live": LIVE_PREFIX + "%"}).rowcount
    if deleted and vacuum:  # VACUUM cannot run in a transaction; it also prunes the dead HNSW entries
        with psycopg.connect(rosetta.database.url, autocommit=True) as conn:
            conn.execute(_sql(_VACUUM, rosetta.store.schema))
    return time.perf_counter() - started


def drop_base(rosetta: Rosetta) -> None:
    """Delete the base collection (``--rebuild``)."""
    with rosetta.database.pool.connection() as conn:
        conn.execute(_sql(_DROP_COLLECTION, rosetta.store.schema), {"name": COLLECTION})


class _Progress:
    """Prints the base build's progress every ``step`` documents."""

    def __init__(self, step: int) -> None:
        self.step, self.done, self.total, self.started = step, 0, 0, time.perf_counter()

    def sources_found(self, count: int) -> None:
        self.total = count

    def source_done(self, reports: Sequence[Any]) -> None:
        self.done += 1
        if self.done % self.step == 0 or self.done == self.total:
            print(f"  base: {self.done}/{self.total} documents, {time.perf_counter() - self.started:.0f} s",
                  flush=True)


def _drop_hnsw(rosetta: Rosetta) -> Collection:
    """Create the collection if needed, drop its two HNSW indexes, and return it."""
    encoder = rosetta.encoder(COLLECTION)
    stored = rosetta.store.ensure_collection(COLLECTION, encoder.name, encoder.dim, encoder.sparse_dim)
    with rosetta.database.pool.connection() as conn:
        for name in collection_index_names(stored.id):
            conn.execute(sql.SQL(_DROP_INDEX).format(schema=sql.Identifier(rosetta.store.schema),
                                                     index=sql.Identifier(name)))
    return stored


def _build_hnsw(rosetta: Rosetta) -> float:
    """Build the collection's HNSW indexes where missing, with rag.store.schema's DDL; return the seconds taken.

    Incremental inserts into a sparsevec HNSW graph cost ~20 ms a chunk at a few thousand rows on this
    machine and grow with the graph, so the base is loaded without the indexes and they are built once,
    as for a bulk load or a restore, with enough memory to build each graph in memory.
    """
    stored = rosetta.store.collection(COLLECTION)
    assert stored is not None
    started = time.perf_counter()
    with psycopg.connect(rosetta.database.url, autocommit=True) as conn:
        conn.execute(_BUILD_SETTINGS)
        create_collection_indexes(conn, rosetta.store.schema, stored.id, stored.dim, stored.sparse_dim,
                                  stored.storage)
    return time.perf_counter() - started


def ensure_base(rosetta: Rosetta, plan: BasePlan, vocab: Sequence[Vocabulary], seed: int) -> dict[str, Any]:
    """Ingest the base documents still missing (none when it was built before); check the counts.

    Missing documents go through the real ingest pipeline (content hash, language detection, chunking,
    the encoding cache, COPY, the GIN index) with the HNSW indexes dropped, which are then built once.
    """
    reset_live(rosetta)
    before = count_rows(rosetta)
    ingest_s = 0.0
    if (before.documents, before.chunks) != (plan.documents, plan.chunks):
        stored = _drop_hnsw(rosetta)
        started = time.perf_counter()
        # Not Rosetta.ingest: its ensure_collection would recreate the HNSW indexes dropped above.
        report = run_ingest(rosetta.pipeline(stored, _Progress(max(1, plan.documents // 50))),
                            [Target("base", plan.corpus(vocab, seed), None)])
        ingest_s = time.perf_counter() - started
        if report.failed:
            raise RuntimeError(f"base ingest failed for {report.failed} documents: {report.files[:3]}")
    index_s = _build_hnsw(rosetta)  # also after a build killed while indexing: IF NOT EXISTS
    after = count_rows(rosetta)
    if (after.documents, after.chunks) != (plan.documents, plan.chunks):
        raise RuntimeError(f"collection {COLLECTION!r} holds {after.documents} documents / {after.chunks} chunks, "
                           f"expected {plan.documents} / {plan.chunks}; run again with --rebuild")
    return {"documents": after.documents, "chunks": after.chunks, "reused": before == after,
            "resumed_from_chunks": before.chunks, "ingest_s": round(ingest_s, 1), "index_s": round(index_s, 1)}
