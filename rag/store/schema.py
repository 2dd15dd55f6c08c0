"""Versioned migrations for Rosetta's tables, applied in order under an advisory lock.

Dense and sparse vectors are stored without a fixed dimension so collections built with different
encoders share one table; each collection gets its own partial HNSW indexes over a cast to its
dimension (see ``COLLECTION_INDEXES``), which also keeps every collection's graph separate.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

# Each entry is one migration; never edit a released one, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {schema}.collections (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        encoder text NOT NULL,
        dense_dim integer NOT NULL CHECK (dense_dim > 0),
        sparse_dim integer NOT NULL CHECK (sparse_dim > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE {schema}.documents (
        id bigserial PRIMARY KEY,
        collection_id integer NOT NULL REFERENCES {schema}.collections (id) ON DELETE CASCADE,
        uri text NOT NULL,
        title text NOT NULL,
        language text NOT NULL,
        content_type text NOT NULL,
        content_hash text NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{{}}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (collection_id, uri)
    );
    CREATE TABLE {schema}.chunks (
        collection_id integer NOT NULL REFERENCES {schema}.collections (id) ON DELETE CASCADE,
        id text NOT NULL,
        document_id bigint NOT NULL REFERENCES {schema}.documents (id) ON DELETE CASCADE,
        ordinal integer NOT NULL,
        text text NOT NULL,
        language text NOT NULL,
        page integer,
        heading text[] NOT NULL DEFAULT '{{}}',
        start_char integer NOT NULL,
        end_char integer NOT NULL,
        dense vector NOT NULL,
        sparse sparsevec,
        sparse_cut real NOT NULL DEFAULT 0,
        PRIMARY KEY (collection_id, id),
        UNIQUE (document_id, ordinal)
    );
    CREATE TABLE {schema}.encoding_cache (
        model text NOT NULL,
        text_hash text NOT NULL,
        dense vector NOT NULL,
        sparse sparsevec,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, text_hash)
    );
    """,
    # 2: the sparse vector's term ids as an array, so the lexical leg can count document frequencies
    # (IDF) through a GIN index; existing rows are filled from their sparsevec's text form.
    """
    ALTER TABLE {schema}.chunks ADD COLUMN terms integer[] NOT NULL DEFAULT '{{}}';
    UPDATE {schema}.chunks SET terms = ARRAY(
        SELECT split_part(pair, ':', 1)::integer
        FROM unnest(string_to_array(split_part(ltrim(sparse::text, '{{'), '}}', 1), ',')) AS pair
        WHERE pair <> ''
    ) WHERE sparse IS NOT NULL;
    CREATE INDEX chunks_terms ON {schema}.chunks USING gin (terms);
    """,
)

COLLECTION_INDEXES = (
    """CREATE INDEX IF NOT EXISTS {dense_index} ON {schema}.chunks
       USING hnsw ((dense::vector({dim})) vector_cosine_ops) WHERE collection_id = {collection}""",
    """CREATE INDEX IF NOT EXISTS {sparse_index} ON {schema}.chunks
       USING hnsw ((sparse::sparsevec({sparse_dim})) sparsevec_ip_ops) WHERE collection_id = {collection}""",
)

_CREATE_LEDGER = (
    "CREATE SCHEMA IF NOT EXISTS {schema}; "
    "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rosetta-migrate'))"
_APPLIED = "SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"
_RECORD = "INSERT INTO {schema}.schema_migrations (version) VALUES (%(version)s)"


def migrate(conn: psycopg.Connection[Any], schema: str) -> int:
    """Apply pending migrations in one transaction; return the schema version now in place."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(_LOCK)
        conn.execute(sql.SQL(_CREATE_LEDGER).format(schema=ident))
        row = conn.execute(sql.SQL(_APPLIED).format(schema=ident)).fetchone()
        current = int(row[0]) if row else 0
        for version, statement in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute(sql.SQL(statement).format(schema=ident))
            conn.execute(sql.SQL(_RECORD).format(schema=ident), {"version": version})
    return len(MIGRATIONS)


def collection_index_names(collection_id: int) -> tuple[str, str]:
    """The names of a collection's dense and sparse HNSW indexes."""
    return f"chunks_dense_c{collection_id}", f"chunks_sparse_c{collection_id}"


def create_collection_indexes(
    conn: psycopg.Connection[Any], schema: str, collection_id: int, dim: int, sparse_dim: int
) -> None:
    """Create the collection's partial HNSW indexes (dense cosine, sparse inner product)."""
    dense, sparse = collection_index_names(collection_id)
    names = {"dense_index": sql.Identifier(dense), "sparse_index": sql.Identifier(sparse)}
    for statement in COLLECTION_INDEXES:
        conn.execute(
            sql.SQL(statement).format(
                schema=sql.Identifier(schema), dim=sql.Literal(int(dim)),
                sparse_dim=sql.Literal(int(sparse_dim)), collection=sql.Literal(int(collection_id)), **names,
            )
        )
