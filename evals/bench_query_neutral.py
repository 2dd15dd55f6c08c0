"""Part 3 of the query benchmark: language-neutral dense search at scale (``PgStore.neutral_dense_search``).

Synthetic embeddings (the mixture of ``bench_query_ann``) get a per-language offset, as real multilingual
embeddings have, in five languages of unequal shares; queries get their own language's offset. The truth
is the same scoring computed exactly in numpy over every chunk (each language ordered by cosine,
languages interleaved by centred cosine, rag/centering.py); the store answers through its per-language
legs (50 candidates each, as ``retrieval.k_dense``), by HNSW with an iterative scan (``exact_below`` 0) or with small languages scanned exactly (the
default). Reported: recall@10 against the truth (what the approximate index scans lose), and latency,
beside the plain HNSW leg without filters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evals.bench_query_ann import K, Vectors, percentiles, synthetic
from rag.centering import LanguageMeans, stratified
from rag.encoders.lexical import LEXICAL_DIM
from rag.store import PgStore
from rag.store.database import Database
from rag.store.schema import collection_index_names, create_collection_indexes
from rag.types import Chunk, Collection, Document, Encoding

LANGUAGES = ("en", "de", "ja", "zh", "th")
SHARES = (0.4, 0.25, 0.2, 0.1, 0.05)
# The size of a language's offset relative to a unit embedding: enough that plain cosine prefers the
# query's language (as e5-small does), so the centring has something to undo.
OFFSET = 0.35
PER_DOCUMENT = 100
# Candidates per language, as retrieval.k_dense: a language's slot scores come from its best candidates.
CANDIDATES = 50
# retrieval.exact_scan_below: languages with fewer chunks are scanned exactly, the others get their own index.
EXACT_BELOW = 1000
SCHEMA = "bench_neutral"


@dataclass(frozen=True, slots=True)
class NeutralRun:
    """One size and scan: recall@10 of the neutral leg against exact scoring, and latencies."""

    chunks: int
    scan: str
    recall_at_10: float
    p50_ms: float
    p95_ms: float
    plain_p50_ms: float
    plain_p95_ms: float

    def as_json(self) -> dict[str, Any]:
        """The run as a JSON object."""
        return {"chunks": self.chunks, "scan": self.scan, "recall@10": self.recall_at_10, "p50_ms": self.p50_ms,
                "p95_ms": self.p95_ms, "plain_p50_ms": self.plain_p50_ms, "plain_p95_ms": self.plain_p95_ms}


def multilingual(n: int, n_queries: int, dim: int, seed: int = 0) -> tuple[Vectors, list[str], Vectors, list[str]]:
    """Synthetic chunk and query vectors, each shifted by its (seeded, unequally shared) language's offset."""
    rng = np.random.default_rng(seed + 1)
    docs, queries = synthetic(n, n_queries, dim, seed)
    offsets = {code: OFFSET * v / np.linalg.norm(v) for code, v in zip(LANGUAGES, rng.standard_normal((5, dim)))}
    doc_languages = list(rng.choice(LANGUAGES, size=n, p=SHARES))
    query_languages = list(rng.choice(LANGUAGES, size=n_queries))

    def shifted(vectors: Vectors, codes: list[str]) -> Vectors:
        moved = vectors + np.stack([offsets[c] for c in codes])
        unit: Vectors = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
        return unit

    return shifted(docs, doc_languages), doc_languages, shifted(queries, query_languages), query_languages


def load(store: PgStore, vectors: Vectors, languages: list[str], indexes: bool = True) -> Collection:
    """One collection of ``vectors`` (documents of PER_DOCUMENT chunks), HNSW built after the load (unless
    ``indexes`` is false)."""
    collection = store.ensure_collection("neutral", "synthetic", vectors.shape[1], LEXICAL_DIM)
    with store.pool.connection() as conn:
        for name in collection_index_names(collection.id):
            conn.execute(f"DROP INDEX IF EXISTS {store.schema}.{name}")
    for start in range(0, len(vectors), PER_DOCUMENT):
        rows = range(start, min(start + PER_DOCUMENT, len(vectors)))
        uri = f"synthetic://{start}"
        chunks = [Chunk(f"c{i}", uri, i - start, "x", 0, 1, languages[i]) for i in rows]
        store.replace_document(collection, Document(uri, "x"), str(start), chunks, [Encoding(vectors[i]) for i in rows])
    if not indexes:
        return collection
    with store.pool.connection() as conn:
        conn.execute("SET maintenance_work_mem = '2GB'")
        create_collection_indexes(conn, store.schema, collection.id, vectors.shape[1], LEXICAL_DIM,
                                  collection.storage)
    store.ensure_language_indexes(collection, EXACT_BELOW)
    with store.pool.connection() as conn:
        conn.execute(f"ANALYZE {store.schema}.chunks")
    return collection


def exact(means: LanguageMeans, docs: Vectors, languages: list[str], query: np.ndarray, language: str) -> list[str]:
    """The top K chunk ids of the neutral scoring computed exactly: each language's CANDIDATES best chunks by
    cosine over all its chunks (a full scan, not the index), ordered by cosine and interleaved by their
    centred cosine, as the store defines it."""
    plain = docs @ query
    codes = np.asarray(languages)
    chosen = np.concatenate([rows[np.argsort(-plain[rows], kind="stable")[:CANDIDATES]]
                             for rows in (np.flatnonzero(codes == code) for code in dict.fromkeys(languages))])
    kept = [languages[i] for i in chosen]
    neutral = means.similarities(means.query(query, language), docs[chosen], kept)
    scores = stratified(kept, plain[chosen].tolist(), neutral.tolist())
    return [f"c{chosen[i]}" for i in np.argsort(-np.asarray(scores), kind="stable")[:K]]


def measure(url: str, n: int, n_queries: int, dim: int, ef_search: int) -> list[NeutralRun]:
    """Load ``n`` chunks, then time and score the neutral leg through the index and with exact small languages."""
    docs, doc_languages, queries, query_languages = multilingual(n, n_queries, dim)
    database = Database.open(url, Path("."))
    try:
        pool = database.pool
        store = PgStore(pool, SCHEMA)
        store.migrate()
        collection = load(store, docs, doc_languages)
        centering = store.centering(collection, sentence_weight=0.0)
        truth = [exact(centering.chunks, docs, doc_languages, q, code) for q, code in zip(queries, query_languages)]
        plain = _times(lambda q, code: store.dense_search(collection, q, K, None, ef_search), queries, query_languages)
        runs = []
        for scan, below in (("hnsw", 0), ("hnsw + exact small", EXACT_BELOW)):
            found: list[list[str]] = []

            def search(q: np.ndarray, code: str, below: int = below, found: list[list[str]] = found) -> None:
                hits = store.neutral_dense_search(collection, q, code, centering, CANDIDATES, None, ef_search, below)
                found.append([h.chunk.id for h in hits[:K]])

            times = _times(search, queries, query_languages)
            recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found[-len(truth):], truth)]))
            runs.append(NeutralRun(n, scan, round(recall, 4), *percentiles(times), *percentiles(plain)))
        with pool.connection() as conn:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    finally:
        database.close()
    return runs


def _times(search: Any, queries: Vectors, languages: list[str]) -> list[float]:
    for q, code in list(zip(queries, languages))[:5]:  # warm the caches
        search(q, code)
    times = []
    for q, code in zip(queries, languages):
        started = time.perf_counter()
        search(q, code)
        times.append((time.perf_counter() - started) * 1000)
    return times

