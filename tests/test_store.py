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
from rag.store.sql import DENSE_SEARCH, search_statement
from rag.store.storage import DEFAULT_STORAGE
from rag.types import Chunk, Collection, Document, Encoding, Filter, SparseVector, Storage


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


def test_storage_is_chosen_at_creation_recorded_and_another_refused(store: PgStore) -> None:
    created = store.ensure_collection("manuals", "e5-small", 4, 5000, Storage.HALFVEC)
    assert created.storage is Storage.HALFVEC
    assert _rows(store, "SELECT name, storage FROM {s}.collections") == [("manuals", "halfvec")]
    assert store.ensure_collection("manuals", "e5-small", 4, 5000) == created  # none asked: the collection's own
    assert store.ensure_collection("manuals", "e5-small", 4, 5000, Storage.HALFVEC) == created
    with pytest.raises(SchemaMismatch) as caught:
        store.ensure_collection("manuals", "e5-small", 4, 5000, Storage.BIT_RESCORE)
    assert str(caught.value) == (
        "collection 'manuals' stores its dense vectors as halfvec; it cannot be ingested into with storage "
        "bit+rescore (a collection's storage is chosen when it is created). Drop --storage (ROSETTA_STORAGE, "
        "ingest.storage) to use the collection's own, or choose another --collection")
    assert store.ensure_collection("other", "e5-small", 4, 5000).storage is DEFAULT_STORAGE
    assert store.status(created).storage is Storage.HALFVEC


# Enough chunks (in five languages of unequal shares) that the planner walks the HNSW index, at e5-small's
# dimension. Sign bits of so few synthetic chunks rank coarsely (recall@10 0.84 from the exact 160 nearest
# by Hamming distance, in numpy), so bit+rescore gets a wide pool here (RESCORE, x k); the shipped settings'
# recall at scale is measured by evals/bench_query.py.
N_SEARCH, DIM_SEARCH, RESCORE = 2000, 384, 64


def _synthetic_collection(store: PgStore, storage: Storage) -> tuple[Collection, np.ndarray, np.ndarray]:
    """A collection of N_SEARCH synthetic chunks (documents of 100 under file:///a/ and file:///b/) and queries."""
    from evals.bench_query_neutral import multilingual

    vectors, languages, queries, _ = multilingual(N_SEARCH, 10, DIM_SEARCH)
    collection = store.ensure_collection("c", "fake", DIM_SEARCH, 5000, storage)
    for start in range(0, N_SEARCH, 100):
        uri = f"file:///{'ab'[start // 100 % 2]}/{start}.md"
        rows = range(start, start + 100)
        chunks = [Chunk(f"c{i}", uri, i - start, "t", 0, 1, languages[i]) for i in rows]
        store.replace_document(collection, Document(uri, "x"), "h", chunks, [Encoding(vectors[i]) for i in rows])
    with store.pool.connection() as conn:
        conn.execute(f"ANALYZE {store.schema}.chunks")
    return collection, vectors, queries


def _plan(store: PgStore, collection: Collection, query: np.ndarray) -> str:
    statement, params = search_statement(DENSE_SEARCH, store.schema, collection, collection.dim, None)
    with store.pool.connection() as conn:
        rows = conn.execute(b"EXPLAIN " + statement.as_bytes(conn), {**params, "query": query, "k": 10, "pool": 10})
        return "\n".join(str(row[0]) for row in rows)


OPERATOR_CLASSES = {Storage.VECTOR: "vector_cosine_ops", Storage.HALFVEC: "halfvec_cosine_ops",
                    Storage.BIT_RESCORE: "bit_hamming_ops"}


@pytest.mark.parametrize("storage", list(Storage))
def test_every_storage_finds_the_exact_neighbours_through_its_index_with_and_without_filters(
        store: PgStore, storage: Storage) -> None:
    collection, _, queries = _synthetic_collection(store, storage)
    ((definition,),) = _rows(store, f"SELECT indexdef FROM pg_indexes WHERE schemaname = '{{s}}' AND indexname = 'chunks_dense_c{collection.id}'")
    assert str(definition).endswith(f"{OPERATOR_CLASSES[storage]}) WHERE (collection_id = {collection.id})")
    assert f"Index Scan using chunks_dense_c{collection.id} " in _plan(store, collection, queries[0])
    for where in (None, Filter(languages=("th",)), Filter(source="file:///a/*")):
        found = [[h.chunk.id for h in store.dense_search(collection, q, 10, where, rescore_factor=RESCORE)]
                 for q in queries]
        exact = [[h.chunk.id for h in store.exact_dense_search(collection, q, 10, where)] for q in queries]
        assert all(len(ids) == 10 for ids in found), where  # filtered rows do not cut the result short
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
        assert recall >= 0.9, (where, recall)


@pytest.mark.parametrize("storage", list(Storage))
def test_every_storage_keeps_the_language_neutral_leg_through_its_language_indexes(
        store: PgStore, storage: Storage) -> None:
    collection, _, queries = _synthetic_collection(store, storage)
    assert sorted(store.ensure_language_indexes(collection, 0)) == ["de", "en", "ja", "th", "zh"]
    ((definition,),) = _rows(store, f"SELECT indexdef FROM pg_indexes WHERE schemaname = '{{s}}' AND indexname = 'chunks_dense_c{collection.id}_th'")
    assert OPERATOR_CLASSES[storage] in str(definition)
    centering = store.centering(collection, sentence_weight=0.0)
    for where in (None, Filter(source="file:///a/*")):
        for q in queries:
            indexed = store.neutral_dense_search(collection, q, "en", centering, 10, where, exact_below=0,
                                                 rescore_factor=RESCORE)
            exact = store.neutral_dense_search(collection, q, "en", centering, 10, where, exact_below=10**9)
            assert len(indexed) == len(exact) == 50  # k per language, none cut short by the filter
            assert len({h.chunk.id for h in indexed[:10]} & {h.chunk.id for h in exact[:10]}) >= 9


def test_pooled_connections_prepare_no_statements(store: PgStore) -> None:
    # A prepared statement's generic plan can differ from the custom plan (HNSW index against an exact scan),
    # and search results then depend on how often a statement has run.
    with store.pool.connection() as conn:
        assert conn.prepare_threshold is None
