"""PgStore against the embedded Postgres: migrations, collections, atomic replace, sparse limits, cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from rag.errors import SchemaMismatch, StoreError
from rag.store import PgStore
from rag.store.database import Database, check_pgvector, redact
from rag.store.schema import MIGRATIONS
from rag.types import Chunk, Document, Encoding, SparseVector


def _chunk(uri: str, ordinal: int, text: str) -> Chunk:
    return Chunk(f"{uri}#{ordinal}", uri, ordinal, text, 0, len(text), "de", 1, ("Wartung", "Filter"))


def _encoding(dim: int = 4, terms: int = 3) -> Encoding:
    return Encoding(np.full(dim, 0.5, dtype=np.float32), SparseVector({i: 1.0 + i for i in range(terms)}, 5000))


def _rows(store: PgStore, query: str) -> list[tuple[object, ...]]:
    with store.pool.connection() as conn:
        return conn.execute(query.format(s=store.schema)).fetchall()


def test_migrations_are_versioned_and_idempotent(store: PgStore) -> None:
    assert store.migrate() == len(MIGRATIONS)
    versions = _rows(store, "SELECT version FROM {s}.schema_migrations ORDER BY version")
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]


def test_collection_records_encoder_and_builds_partial_indexes(store: PgStore) -> None:
    created = store.ensure_collection("manuals", "e5-small", 4, 5000)
    assert store.ensure_collection("manuals", "e5-small", 4, 5000) == created
    indexes = {name for (name,) in _rows(store, "SELECT indexname FROM pg_indexes WHERE schemaname = '{s}'")}
    assert {f"chunks_dense_c{created.id}", f"chunks_sparse_c{created.id}"} <= indexes


def test_other_encoder_on_existing_collection_is_a_clear_error(store: PgStore) -> None:
    store.ensure_collection("manuals", "e5-small", 384, 5000)
    with pytest.raises(SchemaMismatch) as caught:
        store.ensure_collection("manuals", "bge-m3:BAAI/bge-m3", 1024, 250002)
    assert str(caught.value) == (
        "collection 'manuals' was built with encoder e5-small (384-d); it cannot be opened with "
        "bge-m3:BAAI/bge-m3 (1024-d). Use --encoder e5-small (ROSETTA_ENCODER, or the encoder passed to "
        "Rosetta.open) to match it, or choose another --collection"
    )


def test_replace_document_swaps_chunks_without_duplicates(store: PgStore) -> None:
    collection = store.ensure_collection("c", "fake", 4, 5000)
    document = Document("file:///a.md", "x", title="A", metadata={"product": "HX-20"})
    store.replace_document(collection, document, "h1", [_chunk(document.uri, i, f"t{i}") for i in range(3)],
                           [_encoding() for _ in range(3)])
    store.replace_document(collection, document, "h2", [_chunk(document.uri, 0, "new")], [_encoding()])
    assert store.document_hashes(collection) == {"file:///a.md": "h2"}
    rows = _rows(store, "SELECT id, text, heading, page FROM {s}.chunks ORDER BY ordinal")
    assert rows == [("file:///a.md#0", "new", ["Wartung", "Filter"], 1)]
    assert _rows(store, "SELECT metadata FROM {s}.documents") == [({"product": "HX-20"},)]


def test_failed_replace_leaves_previous_version_intact(store: PgStore) -> None:
    collection = store.ensure_collection("c", "fake", 4, 5000)
    document = Document("file:///a.md", "x")
    store.replace_document(collection, document, "h1", [_chunk(document.uri, 0, "old")], [_encoding()])
    wrong = Encoding(np.ones(7, dtype=np.float32))
    with pytest.raises(SchemaMismatch, match="has a 7-d vector; collection 'c' stores 4-d vectors"):
        store.replace_document(collection, document, "h2", [_chunk(document.uri, 0, "new")], [wrong])
    assert store.document_hashes(collection) == {"file:///a.md": "h1"}
    assert _rows(store, "SELECT text FROM {s}.chunks") == [("old",)]


def test_sparse_vectors_keep_top_terms_and_record_cut_mass(store: PgStore) -> None:
    collection = store.ensure_collection("c", "fake", 4, 5000)
    document = Document("file:///big.md", "x")
    weights = {i: 1.0 for i in range(1200)} | {5: 100.0}
    encoding = Encoding(np.ones(4, dtype=np.float32), SparseVector(weights, 5000))
    store.replace_document(collection, document, "h", [_chunk(document.uri, 0, "t")], [encoding], 1000)
    ((nnz, cut, has_top),) = _rows(
        store, "SELECT array_length(regexp_split_to_array(split_part(sparse::text, '}}', 1), ','), 1), "
               "sparse_cut, sparse::text LIKE '%6:100}}%' OR sparse::text LIKE '%,6:100,%' FROM {s}.chunks")
    assert nnz == 1000
    assert cut == pytest.approx(200 / 1299, rel=1e-5)
    assert has_top


def test_delete_and_status(store: PgStore) -> None:
    collection = store.ensure_collection("c", "fake", 4, 5000)
    for uri, language in [("file:///de.md", "de"), ("file:///ja.md", "ja")]:
        document = Document(uri, "x", language=language)
        chunks = [Chunk(f"{uri}{i}", uri, i, "t", 0, 1, language) for i in range(2)]
        store.replace_document(collection, document, "h", chunks, [_encoding(), _encoding()])
    status = store.status(collection)
    assert (status.documents, status.chunks, dict(status.languages)) == (2, 4, {"de": 2, "ja": 2})
    assert store.delete_documents(collection, ["file:///de.md", "file:///gone.md"]) == 1
    assert store.status(collection).chunks == 2


def test_encoding_cache_round_trip(store: PgStore) -> None:
    encoding = _encoding(terms=2)
    store.cache_encodings("m", {"k": encoding})
    store.cache_encodings("m", {"k": _encoding(terms=1)})  # first writer wins
    found = store.cached_encodings("m", ["k", "missing"])
    assert list(found) == ["k"]
    assert np.array_equal(found["k"].dense, encoding.dense)
    assert found["k"].sparse == encoding.sparse


def test_psycopg_errors_become_store_errors(store: PgStore) -> None:
    broken = PgStore(store.pool, "no_such_schema")
    with pytest.raises(SchemaMismatch, match="run `rosetta ingest` first"):
        broken.collections()
    with store.pool.connection() as conn:
        conn.execute(f"ALTER TABLE {store.schema}.documents ADD CONSTRAINT no_a CHECK (uri <> 'file:///a')")
        conn.commit()
    collection = store.ensure_collection("c", "fake", 4, 5000)
    with pytest.raises(StoreError, match="storing file:///a failed") as caught:
        store.replace_document(collection, Document("file:///a", "x"), "h", [], [])
    assert isinstance(caught.value.__cause__, psycopg.errors.CheckViolation)


def test_unusable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError) as caught:
        Database.open(None, blocker / "data")
    assert str(caught.value) == (
        f"data directory {blocker / 'data'} is not usable (Not a directory); "
        "set ROSETTA_DATA_DIR or --data-dir to a writable directory"
    )


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://me:s3cret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redact("postgresql://postgres:@/postgres?host=/tmp/pg") == "postgresql://postgres:***@/postgres?host=/tmp/pg"


def test_pgvector_without_sparsevec_is_refused_with_the_fix() -> None:
    assert check_pgvector("0.8.5", "postgresql://x") == "0.8.5"
    with pytest.raises(SchemaMismatch) as caught:
        check_pgvector("0.6.2", "postgresql://me:pw@db/x")
    assert str(caught.value) == (
        "pgvector 0.6.2 on postgresql://me:***@db/x has no sparsevec; install pgvector >= 0.7 on the server "
        "and run ALTER EXTENSION vector UPDATE"
    )
