"""PgStore: collections, documents and chunks with dense ``vector`` and sparse ``sparsevec`` columns.

With ``rag/store/adapt.py`` (psycopg errors as StoreError, pgvector's types as ours), the only code that
knows the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg import sql
from psycopg_pool import ConnectionPool

from rag.centering import Centering, LatentQuery
from rag.config import RetrievalConfig
from rag.errors import SchemaMismatch, StoreError
from rag.store.adapt import chunk_row, copy_sentences, dense_from_pg, errors, from_pg, to_pg
from rag.store.neutral import centering_from_rows, interleaved, language_legs
from rag.store.schema import (
    create_collection_indexes,
    create_language_index,
    language_index_name,
    language_indexes,
    migrate,
)
from rag.store.sql import (
    ADD_LANGUAGE_REFERENCE,
    CHUNK_COUNT,
    DENSE_SEARCH,
    EXACT_DENSE_SEARCH,
    HYBRID_SEARCH,
    LANGUAGE_STATS,
    NEIGHBOURS,
    SET_EF_SEARCH,
    SET_ITERATIVE_SCAN,
    SPARSE_SEARCH,
    TERM_FREQUENCIES,
    collection_statement,
    fused_row_to_hit,
    row_to_chunk,
    row_to_hit,
    search_statement,
)
from rag.store.storage import (
    DEFAULT_STORAGE,
    SPARSE_EF_SEARCH,
    candidates,
    ef_search_for,
    scan_ef,
    storage_mismatch,
)
from rag.types import (
    Chunk,
    Collection,
    CollectionStatus,
    Document,
    Encoding,
    Filter,
    Hit,
    SentenceVector,
    SparseVector,
    Storage,
)

LEG_EF_PER_ROW = 8
_GET_COLLECTION = """
    SELECT id, name, encoder, dense_dim, sparse_dim, storage FROM {schema}.collections WHERE name = %(name)s
"""
_LIST_COLLECTIONS = "SELECT id, name, encoder, dense_dim, sparse_dim, storage FROM {schema}.collections ORDER BY name"
_INSERT_COLLECTION = """
    INSERT INTO {schema}.collections (name, encoder, dense_dim, sparse_dim, storage)
    VALUES (%(name)s, %(encoder)s, %(dim)s, %(sparse_dim)s, %(storage)s)
    ON CONFLICT (name) DO NOTHING
"""
# CREATE INDEX IF NOT EXISTS is no guard against a second session creating the same index at the same time
# (it fails on pg_class's unique name): a collection's indexes are created under this lock, one session after
# the other, and the second finds them there.
_INDEX_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rosetta-index'), %(collection)s)"
_DOCUMENT_HASHES = "SELECT uri, content_hash FROM {schema}.documents WHERE collection_id = %(collection)s"
_UPSERT_DOCUMENT = """
    INSERT INTO {schema}.documents
        (collection_id, uri, title, language, content_type, content_hash, metadata)
    VALUES (%(collection)s, %(uri)s, %(title)s, %(language)s, %(content_type)s, %(hash)s, %(metadata)s)
    ON CONFLICT (collection_id, uri) DO UPDATE SET
        title = EXCLUDED.title, language = EXCLUDED.language, content_type = EXCLUDED.content_type,
        content_hash = EXCLUDED.content_hash, metadata = EXCLUDED.metadata, updated_at = now()
    RETURNING id
"""
_DELETE_CHUNKS = "DELETE FROM {schema}.chunks WHERE document_id = %(document)s"
_COPY_CHUNKS = """
    COPY {schema}.chunks (collection_id, id, document_id, ordinal, text, language, page, heading,
                          start_char, end_char, dense, sparse, sparse_cut, terms, latent)
    FROM STDIN WITH (FORMAT BINARY)
"""
_CHUNK_TYPES = ["int4", "text", "int8", "int4", "text", "text", "int4", "text[]", "int4", "int4",
                "vector", "sparsevec", "float4", "int4[]", "sparsevec"]
_COPY_SENTENCES = """
    COPY {schema}.sentences (collection_id, chunk_id, ordinal, language, dense) FROM STDIN WITH (FORMAT BINARY)
"""
_DELETE_DOCUMENTS = "DELETE FROM {schema}.documents WHERE collection_id = %(collection)s AND uri = ANY(%(uris)s)"
_COUNTS = """
    SELECT (SELECT count(*) FROM {schema}.documents WHERE collection_id = %(collection)s),
           (SELECT count(*) FROM {schema}.chunks WHERE collection_id = %(collection)s)
"""
_CHUNK_LANGUAGES = """
    SELECT language, count(*) FROM {schema}.chunks WHERE collection_id = %(collection)s
    GROUP BY language ORDER BY count(*) DESC, language
"""
_DOCUMENT_LANGUAGES = """
    SELECT language, count(*) FROM {schema}.documents WHERE collection_id = %(collection)s
    GROUP BY language ORDER BY count(*) DESC, language
"""
_CACHE_GET = """
    SELECT text_hash, dense, sparse FROM {schema}.encoding_cache
    WHERE model = %(model)s AND text_hash = ANY(%(hashes)s)
"""
_CACHE_PUT = """
    INSERT INTO {schema}.encoding_cache (model, text_hash, dense, sparse)
    VALUES (%(model)s, %(hash)s, %(dense)s, %(sparse)s) ON CONFLICT (model, text_hash) DO NOTHING
"""
_LATENT_GET = """
    SELECT text_hash, latent FROM {schema}.latent_cache WHERE model = %(model)s AND text_hash = ANY(%(hashes)s)
"""
_LATENT_PUT = """
    INSERT INTO {schema}.latent_cache (model, text_hash, latent)
    VALUES (%(model)s, %(hash)s, %(latent)s) ON CONFLICT (model, text_hash) DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class PgStore:
    """Rosetta's tables in ``schema`` of the database behind ``pool``."""

    pool: ConnectionPool
    schema: str = "rosetta"

    def _sql(self, statement: str) -> sql.Composed:
        return sql.SQL(statement).format(schema=sql.Identifier(self.schema))

    def migrate(self) -> int:
        """Create or upgrade the tables; return the schema version."""
        with errors("migrating the schema"), self.pool.connection() as conn:
            return migrate(conn, self.schema)

    def collection(self, name: str) -> Collection | None:
        """The collection called ``name``, or None."""
        with errors(f"reading collection {name!r}"), self.pool.connection() as conn:
            row = conn.execute(self._sql(_GET_COLLECTION), {"name": name}).fetchone()
        return collection_from_row(row) if row else None

    def collections(self) -> list[Collection]:
        """Every collection, by name."""
        with errors("listing collections"), self.pool.connection() as conn:
            return [collection_from_row(row) for row in conn.execute(self._sql(_LIST_COLLECTIONS))]

    def ensure_collection(self, name: str, encoder: str, dim: int, sparse_dim: int,
                          storage: Storage | None = None) -> Collection:
        """Return collection ``name``, creating it for this encoder with ``storage`` (None: DEFAULT_STORAGE);
        SchemaMismatch if another encoder built it or it was created with another storage than ``storage``."""
        params = {"name": name, "encoder": encoder, "dim": dim, "sparse_dim": sparse_dim,
                  "storage": (storage or DEFAULT_STORAGE).value}
        with errors(f"creating collection {name!r}"), self.pool.connection() as conn, conn.transaction():
            conn.execute(self._sql(_INSERT_COLLECTION), params)
            row = conn.execute(self._sql(_GET_COLLECTION), {"name": name}).fetchone()
            assert row is not None
            found = collection_from_row(row)
            if (found.encoder, found.dim, found.sparse_dim) == (encoder, dim, sparse_dim):
                conn.execute(_INDEX_LOCK, {"collection": found.id})
                create_collection_indexes(conn, self.schema, found.id, dim, sparse_dim, found.storage)
        built_by(found, encoder, dim, sparse_dim)
        if storage is not None and found.storage is not storage:
            raise SchemaMismatch(storage_mismatch(name, found.storage, storage))
        return found

    def open_collection(self, name: str) -> Collection:
        """Return existing collection ``name``; StoreError naming the collections there are if it is missing."""
        found = self.collection(name)
        if found is None:
            known = ", ".join(c.name for c in self.collections()) or "none yet"
            raise StoreError(f"collection {name!r} does not exist (collections: {known}); "
                             f"ingest into it first: rosetta ingest PATH --collection {name}")
        return found

    def document_hashes(self, collection: Collection) -> dict[str, str]:
        """``{uri: content_hash}`` of every document in the collection."""
        with errors("reading document hashes"), self.pool.connection() as conn:
            rows = conn.execute(self._sql(_DOCUMENT_HASHES), {"collection": collection.id})
            return {str(uri): str(digest) for uri, digest in rows}

    def replace_document(
        self,
        collection: Collection,
        document: Document,
        content_hash: str,
        chunks: Sequence[Chunk],
        encodings: Sequence[Encoding],
        sparse_max_terms: int = 1000,
        sentences: Sequence[SentenceVector] = (),
    ) -> int:
        """Insert or replace a document, its chunks and their sentence vectors in one transaction; return the
        chunk count."""
        if len(chunks) != len(encodings):
            raise ValueError(f"{len(chunks)} chunks but {len(encodings)} encodings for {document.uri}")
        params = {
            "collection": collection.id, "uri": document.uri, "title": document.title,
            "language": document.language or "und", "content_type": document.content_type,
            "hash": content_hash, "metadata": json.dumps(document.metadata, ensure_ascii=False, default=str),
        }
        with errors(f"storing {document.uri}"), self.pool.connection() as conn, conn.transaction():
            row = conn.execute(self._sql(_UPSERT_DOCUMENT), params).fetchone()
            assert row is not None
            conn.execute(self._sql(_DELETE_CHUNKS), {"document": row[0]})
            with conn.cursor() as cursor, cursor.copy(self._sql(_COPY_CHUNKS)) as copy:
                copy.set_types(_CHUNK_TYPES)
                for chunk, encoding in zip(chunks, encodings):
                    copy.write_row(chunk_row(collection, int(row[0]), chunk, encoding, sparse_max_terms))
            if sentences:
                copy_sentences(conn, self._sql(_COPY_SENTENCES), collection, chunks, sentences)
        return len(chunks)

    def delete_documents(self, collection: Collection, uris: Sequence[str]) -> int:
        """Delete documents (and their chunks) by URI; return how many were deleted."""
        with errors("deleting documents"), self.pool.connection() as conn, conn.transaction():
            cursor = conn.execute(self._sql(_DELETE_DOCUMENTS), {"collection": collection.id, "uris": list(uris)})
            return cursor.rowcount

    def status(self, collection: Collection) -> CollectionStatus:
        """Document and chunk counts, chunks and documents per language."""
        args = {"collection": collection.id}
        with errors(f"reading status of {collection.name!r}"), self.pool.connection() as conn:
            counts = conn.execute(self._sql(_COUNTS), args).fetchone()
            assert counts is not None
            languages = {str(k): int(v) for k, v in conn.execute(self._sql(_CHUNK_LANGUAGES), args)}
            doc_languages = {str(k): int(v) for k, v in conn.execute(self._sql(_DOCUMENT_LANGUAGES), args)}
        return CollectionStatus(collection.name, collection.encoder, collection.dim, int(counts[0]),
                                int(counts[1]), languages, doc_languages, collection.storage)

    def dense_search(self, collection: Collection, query: np.ndarray, k: int, where: Filter | None = None,
                     ef_search: int | None = None, rescore_factor: int = 8) -> list[Hit]:
        """The ``k`` chunks nearest to ``query`` by cosine distance (HNSW over the collection's storage, the
        candidates ordered exactly), as Hits of leg ``dense``."""
        if query.shape != (collection.dim,):
            raise SchemaMismatch(f"query vector has shape {query.shape}; collection {collection.name!r} "
                                 f"stores {collection.dim}-d vectors")
        statement, params = search_statement(DENSE_SEARCH, self.schema, collection, collection.dim, where)
        pool = candidates(collection.storage, k, rescore_factor)
        ef = scan_ef(collection.storage, ef_search_for(collection.storage, ef_search), pool)
        rows = self._search(statement, {**params, "query": query, "k": k, "pool": pool}, where, ef, collection.storage)
        return [row_to_hit(row, collection, "dense", rank, 1.0 - float(row[10])) for rank, row in enumerate(rows, 1)]

    def exact_dense_search(self, collection: Collection, query: np.ndarray, k: int,
                           where: Filter | None = None) -> list[Hit]:
        """Like ``dense_search`` but by a full scan, without the index: the ground truth for ANN recall."""
        statement, params = search_statement(EXACT_DENSE_SEARCH, self.schema, collection, collection.dim, where)
        with errors("exact dense search"), self.pool.connection() as conn:
            rows = conn.execute(statement, {**params, "query": query, "k": k}).fetchall()
        return [row_to_hit(row, collection, "exact", rank, 1.0 - float(row[10])) for rank, row in enumerate(rows, 1)]

    def centering(self, collection: Collection, prior: float = 2.0, query_weight: float = 0.5,
                  sentence_weight: float = 0.5, latent_weight: float = 0.0,
                  latent_choice_weight: float = 0.0, reference_prior: float | None = None) -> Centering:
        """The collection's per-language means of chunk and sentence vectors (kept by triggers, migration 3) and
        its languages' reference offsets (migration 8)."""
        with errors(f"reading language statistics of {collection.name!r}"), self.pool.connection() as conn:
            rows = conn.execute(collection_statement(LANGUAGE_STATS, self.schema, collection)).fetchall()
        return centering_from_rows(rows, prior, query_weight, sentence_weight, latent_weight, latent_choice_weight,
                                   reference_prior)

    def ensure_language_references(
            self, collection: Collection,
            reference: Callable[[Sequence[str]], Mapping[str, tuple[int, np.ndarray]]]) -> list[str]:
        """Store ``reference(languages)`` (each language's reference sentence count and vector sum, as
        rag.reference.reference_sums gives them) for the languages the collection holds that lack it; return
        the languages written. A language without reference text is asked for again next time (it costs
        nothing)."""
        means = self.centering(collection).chunks
        missing = sorted(set(means.counts) - set(means.offsets))
        found = reference(missing) if missing else {}
        if not found:
            return []
        statement = collection_statement(ADD_LANGUAGE_REFERENCE, self.schema, collection)
        with errors(f"writing the language reference of {collection.name!r}"), self.pool.connection() as conn, \
                conn.transaction():
            for code, (count, total) in sorted(found.items()):
                conn.execute(statement, {"collection": collection.id, "language": code, "rows": count,
                                         "dense_sum": np.asarray(total, dtype=np.float32)})
        return sorted(found)

    def ensure_language_indexes(self, collection: Collection, min_chunks: int) -> list[str]:
        """Create the HNSW index of every language with at least ``min_chunks`` chunks that lacks one; return
        the languages indexed now. Building blocks writes to ``chunks`` for its duration."""
        counts = self.centering(collection).chunks.counts
        with errors(f"indexing the languages of {collection.name!r}"), self.pool.connection() as conn, \
                conn.transaction():
            conn.execute(_INDEX_LOCK, {"collection": collection.id})
            existing = language_indexes(conn, self.schema, collection.id)
            wanted = [code for code, n in counts.items() if n >= min_chunks
                      and language_index_name(collection.id, code) not in existing]
            for code in wanted:
                create_language_index(conn, self.schema, collection.id, collection.dim, code, collection.storage)
        return wanted

    def neutral_dense_search(self, collection: Collection, question: np.ndarray, language: str | None,
                             centering: Centering, k: int, where: Filter | None = None,
                             ef_search: int | None = None, exact_below: int = 1000, rescore_factor: int = 8,
                             latent: SparseVector | None = None) -> list[Hit]:
        """Up to ``k`` chunks per language, ordered within it by cosine and interleaved by centred cosine
        (leg ``dense``; rag/store/neutral.py). Languages with fewer than ``exact_below`` chunks are scanned
        exactly, the others through the collection's HNSW index (iteratively, as rows are filtered)."""
        if question.shape != (collection.dim,):
            raise SchemaMismatch(f"query vector has shape {question.shape}; collection {collection.name!r} "
                                 f"stores {collection.dim}-d vectors")
        legs = language_legs(self.schema, collection, question, language, centering, k, where, exact_below,
                             rescore_factor)
        if legs is None:
            return []
        statement, params, query = legs
        pool = int(params["pool"])
        # Each language's leg is an iteratively filtered HNSW scan, and a language other than the question's
        # lies away from where the graph search starts: with ef_search 100 such scans found half of the true
        # k nearest at 10k chunks, with 8k (400) all of them, and faster (evals/bench_query_neutral.py).
        ef = scan_ef(collection.storage, max(ef_search_for(collection.storage, ef_search), LEG_EF_PER_ROW * k), pool)
        rows = self._search(statement, params, True, ef, collection.storage, binary=True)
        scoring = LatentQuery.of(centering, latent, language) if latent is not None else None
        return interleaved(collection, centering, query, question, rows, scoring, language)

    def sparse_search(self, collection: Collection, query: SparseVector, k: int, where: Filter | None = None,
                      ef_search: int | None = None, leg: str = "sparse") -> list[Hit]:
        """The ``k`` chunks with the largest inner product with ``query``, as Hits of leg ``leg``."""
        if query.dim != collection.sparse_dim:
            raise SchemaMismatch(f"sparse query has {query.dim} dimensions; collection {collection.name!r} "
                                 f"uses {collection.sparse_dim}")
        if not query.weights:
            return []
        statement, params = search_statement(SPARSE_SEARCH, self.schema, collection, collection.sparse_dim, where)
        rows = self._search(statement, {**params, "query": to_pg(query), "k": k}, where,
                            SPARSE_EF_SEARCH if ef_search is None else ef_search)
        # The index also returns chunks sharing no term (inner product 0) once the matches run out.
        matching = [row for row in rows if float(row[10]) < 0]
        return [row_to_hit(row, collection, leg, rank, -float(row[10])) for rank, row in enumerate(matching, 1)]

    def hybrid_search(self, collection: Collection, dense: np.ndarray, sparse: SparseVector, k: int,
                      where: Filter | None, language: str | None, fusion: RetrievalConfig) -> list[Hit]:
        """Dense and sparse legs fused by RRF inside Postgres in one statement (same result as ``rrf``), as ``fusion`` says."""
        statement, params = search_statement(HYBRID_SEARCH, self.schema, collection, collection.dim, where)
        pool = candidates(collection.storage, fusion.k_dense, fusion.rescore_factor)
        params |= {"dense": dense, "sparse": to_pg(sparse), "k": k, "k_dense": fusion.k_dense, "pool": pool,
                   "k_sparse": fusion.k_sparse, "rrf_k": float(fusion.rrf_k),
                   "dense_weight": float(fusion.dense_weight), "sparse_weight": float(fusion.sparse_weight),
                   "language": language, "cross_language_weight": float(fusion.cross_language_sparse_weight)}
        # One ef_search serves both legs' index scans; sign bits need theirs raised to the candidate pool.
        ef = scan_ef(collection.storage, ef_search_for(collection.storage, fusion.ef_search), pool)
        return [fused_row_to_hit(row, collection) for row in self._search(statement, params, where, ef,
                                                                          collection.storage)]

    def _search(self, statement: sql.Composed, params: dict[str, Any], filtered: bool | Filter | None,
                ef_search: int, storage: Storage = Storage.VECTOR, binary: bool = False) -> list[tuple[Any, ...]]:
        """Run a search statement with ``ef_search``, and HNSW's iterative scan when rows are filtered or a
        sign-bit scan's candidate pool may exceed ef_search; ``binary``: results in binary format (a sparse
        vector then loads in microseconds instead of parsing its text)."""
        with errors("search"), self.pool.connection() as conn, conn.transaction():
            conn.execute(SET_EF_SEARCH, {"ef": str(int(ef_search))})
            iterate = filtered is True or (isinstance(filtered, Filter) and not filtered.is_empty())
            if iterate or storage is Storage.BIT_RESCORE:
                conn.execute(SET_ITERATIVE_SCAN)
            return conn.execute(statement, params, binary=binary).fetchall()

    def term_frequencies(self, collection: Collection, terms: Sequence[int]) -> tuple[int, dict[int, int]]:
        """The collection's chunk count and, per term id, how many chunks contain it (for IDF)."""
        with errors("counting term frequencies"), self.pool.connection() as conn:
            total = conn.execute(collection_statement(CHUNK_COUNT, self.schema, collection)).fetchone()
            rows = conn.execute(collection_statement(TERM_FREQUENCIES, self.schema, collection),
                                {"terms": [int(t) for t in terms]}).fetchall()
        return int(total[0]) if total else 0, {int(term): int(count) for term, count in rows}

    def neighbours(self, collection: Collection, chunk: Chunk, radius: int = 1) -> list[Chunk]:
        """``chunk`` and up to ``radius`` chunks either side of it in its document, in order."""
        params = {"uri": chunk.document_uri, "low": chunk.ordinal - radius, "high": chunk.ordinal + radius}
        with errors("reading a passage's neighbours"), self.pool.connection() as conn:
            rows = conn.execute(collection_statement(NEIGHBOURS, self.schema, collection), params).fetchall()
        return [row_to_chunk(row) for row in rows]

    def cached_encodings(self, model: str, hashes: Sequence[str]) -> dict[str, Encoding]:
        """Encodings cached for ``model`` under these text hashes."""
        with errors("reading the encoding cache"), self.pool.connection() as conn:
            rows = conn.execute(self._sql(_CACHE_GET), {"model": model, "hashes": list(hashes)})
            return {str(h): Encoding(dense_from_pg(dense), from_pg(sparse)) for h, dense, sparse in rows}

    def cache_encodings(self, model: str, encodings: Mapping[str, Encoding]) -> None:
        """Remember encodings for ``model`` by text hash (first writer wins)."""
        # In hash order: two writers inserting overlapping keys in opposite orders would deadlock.
        rows = [{"model": model, "hash": h, "dense": e.dense, "sparse": to_pg(e.sparse)}
                for h, e in sorted(encodings.items(), key=lambda item: item[0])]
        with errors("writing the encoding cache"), self.pool.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(self._sql(_CACHE_PUT), rows)

    def cached_latents(self, model: str, hashes: Sequence[str]) -> dict[str, SparseVector]:
        """Latent terms cached for ``model`` under these text hashes."""
        with errors("reading the latent-term cache"), self.pool.connection() as conn:
            rows = conn.execute(self._sql(_LATENT_GET), {"model": model, "hashes": list(hashes)})
            return {str(h): latent for h, value in rows if (latent := from_pg(value)) is not None}

    def cache_latents(self, model: str, latents: Mapping[str, SparseVector]) -> None:
        """Remember latent terms for ``model`` by text hash (first writer wins; in hash order, as above)."""
        rows = [{"model": model, "hash": h, "latent": to_pg(v)} for h, v in sorted(latents.items(), key=lambda item: item[0])]
        with errors("writing the latent-term cache"), self.pool.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(self._sql(_LATENT_PUT), rows)


def collection_from_row(row: tuple[Any, ...]) -> Collection:
    """A collections row (id, name, encoder, dense_dim, sparse_dim, storage) as a Collection."""
    collection_id, name, encoder, dim, sparse_dim, storage = row
    return Collection(int(collection_id), str(name), str(encoder), int(dim), int(sparse_dim), Storage(storage))


def built_by(found: Collection, encoder: str, dim: int, sparse_dim: int) -> Collection:
    """``found`` if ``encoder`` built it; SchemaMismatch naming both encoders and the fix otherwise. An
    encoder of the same dimension is refused too: its vectors live in another space."""
    if (found.encoder, found.dim, found.sparse_dim) != (encoder, dim, sparse_dim):
        raise SchemaMismatch(
            f"collection {found.name!r} was built with encoder {found.encoder} ({found.dim}-d); it cannot be "
            f"opened with {encoder} ({dim}-d). Use --encoder {_selector(found.encoder)} (ROSETTA_ENCODER, or the "
            "encoder passed to Rosetta.open) to match it, or choose another --collection"
        )
    return found


def _selector(encoder: str) -> str:
    """How to select the encoder a collection records: its name, or for a remote server's vectors (named
    ``openai-compatible:<model>...`` by rag/encoders/remote.py) the encoder and its settings."""
    if encoder.startswith("openai-compatible:"):
        return "openai-compatible with the server, model and prefixes it was ingested with (ROSETTA_EMBEDDINGS_*)"
    return encoder
