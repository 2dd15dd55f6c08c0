"""Versioned migrations for Rosetta's tables, applied in order under an advisory lock.

Dense and sparse vectors are stored without a fixed dimension so collections built with different
encoders share one table; each collection gets its own partial HNSW indexes over a cast to its
dimension (see ``COLLECTION_INDEXES``), which also keeps every collection's graph separate.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from rag.errors import SchemaMismatch
from rag.store.storage import index_key
from rag.types import Storage

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
    # 3: sentence vectors (a chunk is also scored by its best sentence; chunks of one sentence have none),
    # and per collection, kind (chunk or sentence) and language the row count and the sum of the dense
    # vectors, from which language-neutral search takes each language's mean (rag/centering.py). Triggers
    # keep the sums in the same transaction as the rows, whatever writes them (ingest, prune, a cascade, an
    # UPDATE), so they are right after a crash too. A trigger first takes a per-collection lock, so two
    # writers never update the same sums in opposite orders (a deadlock).
    """
    CREATE TABLE {schema}.sentences (
        collection_id integer NOT NULL,
        chunk_id text NOT NULL,
        ordinal integer NOT NULL,
        language text NOT NULL,
        dense vector NOT NULL,
        PRIMARY KEY (collection_id, chunk_id, ordinal),
        FOREIGN KEY (collection_id, chunk_id) REFERENCES {schema}.chunks (collection_id, id) ON DELETE CASCADE
    );
    CREATE TABLE {schema}.language_stats (
        collection_id integer NOT NULL REFERENCES {schema}.collections (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('chunk', 'sentence')),
        language text NOT NULL,
        rows bigint NOT NULL,
        dense_sum vector NOT NULL,
        PRIMARY KEY (collection_id, kind, language)
    );
    INSERT INTO {schema}.language_stats (collection_id, kind, language, rows, dense_sum)
    SELECT collection_id, 'chunk', language, count(*), sum(dense) FROM {schema}.chunks
    GROUP BY collection_id, language;
    CREATE INDEX chunks_language ON {schema}.chunks (collection_id, language);

    CREATE FUNCTION {schema}.language_stats_change() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        stat_kind text := TG_ARGV[0];
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            PERFORM pg_advisory_xact_lock(hashtext('rosetta-language-stats'), collection_id)
            FROM (SELECT DISTINCT collection_id FROM removed ORDER BY 1) AS touched;
            UPDATE {schema}.language_stats s SET rows = s.rows - r.rows, dense_sum = s.dense_sum - r.dense_sum
            FROM (SELECT collection_id, language, count(*) AS rows, sum(dense) AS dense_sum FROM removed
                  GROUP BY collection_id, language) AS r
            WHERE s.collection_id = r.collection_id AND s.kind = stat_kind AND s.language = r.language;
            DELETE FROM {schema}.language_stats s WHERE s.rows <= 0;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            PERFORM pg_advisory_xact_lock(hashtext('rosetta-language-stats'), collection_id)
            FROM (SELECT DISTINCT collection_id FROM added ORDER BY 1) AS touched;
            INSERT INTO {schema}.language_stats AS s (collection_id, kind, language, rows, dense_sum)
            SELECT collection_id, stat_kind, language, count(*), sum(dense) FROM added
            GROUP BY collection_id, language ORDER BY collection_id, language
            ON CONFLICT (collection_id, kind, language) DO UPDATE
            SET rows = s.rows + excluded.rows, dense_sum = s.dense_sum + excluded.dense_sum;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER language_stats_insert AFTER INSERT ON {schema}.chunks REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('chunk');
    CREATE TRIGGER language_stats_delete AFTER DELETE ON {schema}.chunks REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('chunk');
    CREATE TRIGGER language_stats_update AFTER UPDATE ON {schema}.chunks
        REFERENCING OLD TABLE AS removed NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('chunk');
    CREATE TRIGGER language_stats_insert AFTER INSERT ON {schema}.sentences REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('sentence');
    CREATE TRIGGER language_stats_delete AFTER DELETE ON {schema}.sentences REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('sentence');
    CREATE TRIGGER language_stats_update AFTER UPDATE ON {schema}.sentences
        REFERENCING OLD TABLE AS removed NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.language_stats_change('sentence');
    """,
    # 4: migration 2 filled ``terms`` from pgvector's text form, whose indices are 1-based, so the rows of a
    # database upgraded through it hold every term id plus one (ingest writes the 0-based ids), and the
    # lexical leg's document frequencies missed them. Rewrites only the rows that differ (found by
    # tests/test_migrations.py, which upgrades a version-1 database with rows in it).
    """
    UPDATE {schema}.chunks c SET terms = fixed.terms
    FROM (
        SELECT collection_id, id, ARRAY(
            SELECT split_part(pair, ':', 1)::integer - 1
            FROM unnest(string_to_array(split_part(ltrim(sparse::text, '{{'), '}}', 1), ',')) AS pair
            WHERE pair <> '' ORDER BY 1
        ) AS terms
        FROM {schema}.chunks WHERE sparse IS NOT NULL
    ) AS fixed
    WHERE c.collection_id = fixed.collection_id AND c.id = fixed.id AND c.terms IS DISTINCT FROM fixed.terms;
    """,
    # 5: what a collection's dense HNSW indexes hold (rag/store/storage.py); every collection built before
    # indexed the vectors as they are.
    """
    ALTER TABLE {schema}.collections ADD COLUMN storage text NOT NULL DEFAULT 'vector'
        CHECK (storage IN ('vector', 'halfvec', 'bit+rescore'));
    """,
    # 6: a chunk's latent terms (rag/types.py LatentEncoder; NULL for an encoder without them), read by the
    # language legs; their cache by text hash like the encodings'; and (until 7) per collection and language the sum
    # of its chunks' latent terms, one row per term (16,384 terms do not fit pgvector's 16,000-dimension
    # types), kept by triggers like language_stats and under the same per-collection lock. pgvector's text
    # form numbers terms from 1; ``term`` is 0-based like the rest of Rosetta. language_stats' triggers fire
    # first (by name), so a language they dropped is dropped here too.
    """
    ALTER TABLE {schema}.chunks ADD COLUMN latent sparsevec;
    CREATE TABLE {schema}.latent_cache (
        model text NOT NULL,
        text_hash text NOT NULL,
        latent sparsevec NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (model, text_hash)
    );
    CREATE TABLE {schema}.latent_stats (
        collection_id integer NOT NULL REFERENCES {schema}.collections (id) ON DELETE CASCADE,
        language text NOT NULL,
        term integer NOT NULL,
        total double precision NOT NULL,
        PRIMARY KEY (collection_id, language, term)
    );
    CREATE FUNCTION {schema}.latent_terms_of(changed_latent sparsevec) RETURNS TABLE (term integer, weight float8)
    LANGUAGE sql IMMUTABLE AS $$
        SELECT split_part(pair, ':', 1)::integer - 1, split_part(pair, ':', 2)::float8
        FROM unnest(string_to_array(split_part(ltrim(changed_latent::text, '{{'), '}}', 1), ',')) AS pair
        WHERE pair <> ''
    $$;
    CREATE FUNCTION {schema}.latent_stats_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            PERFORM pg_advisory_xact_lock(hashtext('rosetta-language-stats'), collection_id)
            FROM (SELECT DISTINCT collection_id FROM removed ORDER BY 1) AS touched;
            UPDATE {schema}.latent_stats s SET total = s.total - r.total
            FROM (SELECT collection_id, language, t.term, sum(t.weight) AS total
                  FROM removed, {schema}.latent_terms_of(removed.latent) AS t
                  WHERE removed.latent IS NOT NULL GROUP BY 1, 2, 3) AS r
            WHERE s.collection_id = r.collection_id AND s.language = r.language AND s.term = r.term;
            DELETE FROM {schema}.latent_stats s
            WHERE (s.collection_id, s.language) IN (SELECT DISTINCT collection_id, language FROM removed)
              AND NOT EXISTS (SELECT 1 FROM {schema}.language_stats l WHERE l.collection_id = s.collection_id
                              AND l.kind = 'chunk' AND l.language = s.language);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            PERFORM pg_advisory_xact_lock(hashtext('rosetta-language-stats'), collection_id)
            FROM (SELECT DISTINCT collection_id FROM added ORDER BY 1) AS touched;
            INSERT INTO {schema}.latent_stats AS s (collection_id, language, term, total)
            SELECT collection_id, language, t.term, sum(t.weight)
            FROM added, {schema}.latent_terms_of(added.latent) AS t
            WHERE added.latent IS NOT NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            ON CONFLICT (collection_id, language, term) DO UPDATE SET total = s.total + excluded.total;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER latent_stats_insert AFTER INSERT ON {schema}.chunks REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.latent_stats_change();
    CREATE TRIGGER latent_stats_delete AFTER DELETE ON {schema}.chunks REFERENCING OLD TABLE AS removed
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.latent_stats_change();
    CREATE TRIGGER latent_stats_update AFTER UPDATE ON {schema}.chunks
        REFERENCING OLD TABLE AS removed NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.latent_stats_change();
    """,
    # 7: the per-language latent sums go (their one reader, centred latent terms in the language choice, measured
    # not to pay: README, "Latent terms"); their triggers cost about 1 ms per chunk written. Chunks keep their
    # latent terms and the cache stays.
    """
    DROP TRIGGER latent_stats_insert ON {schema}.chunks;
    DROP TRIGGER latent_stats_delete ON {schema}.chunks;
    DROP TRIGGER latent_stats_update ON {schema}.chunks;
    DROP FUNCTION {schema}.latent_stats_change();
    DROP FUNCTION {schema}.latent_terms_of(sparsevec);
    DROP TABLE {schema}.latent_stats;
    """,
    # 8: each language's reference text (rag/reference.py) as the collection's encoder reads it: the sentence
    # count and vector sum, written by ingest for every language the collection holds that has reference text.
    # The language offset a small language is shrunk toward (rag/centering.py, LanguageMeans.shift). Kept when
    # the language's chunks go: it describes the encoder, not the chunks.
    """
    CREATE TABLE {schema}.language_reference (
        collection_id integer NOT NULL REFERENCES {schema}.collections (id) ON DELETE CASCADE,
        language text NOT NULL,
        rows integer NOT NULL CHECK (rows > 0),
        dense_sum vector NOT NULL,
        PRIMARY KEY (collection_id, language)
    );
    """,
)

COLLECTION_INDEXES = (
    """CREATE INDEX IF NOT EXISTS {dense_index} ON {schema}.chunks
       USING hnsw ({dense_key}) WHERE collection_id = {collection}""",
    """CREATE INDEX IF NOT EXISTS {sparse_index} ON {schema}.chunks
       USING hnsw ((sparse::sparsevec({sparse_dim})) sparsevec_ip_ops) WHERE collection_id = {collection}""",
)

# One graph per language of a collection once it has enough chunks (retrieval.exact_scan_below): a search
# filtered to a language in the collection-wide graph starts far from that language's region and walks
# much of the graph (at 100k chunks: recall@10 0.73 and p50 445 ms; with these indexes 0.9995 and 39 ms;
# evals/bench_query_neutral.py).
LANGUAGE_INDEX = """CREATE INDEX IF NOT EXISTS {name} ON {schema}.chunks
    USING hnsw ({dense_key}) WHERE collection_id = {collection} AND language = {language}"""
_LANGUAGE_INDEXES = """
    SELECT indexname FROM pg_indexes WHERE schemaname = %(schema)s AND indexname LIKE %(prefix)s
"""

_CREATE_LEDGER = (
    "CREATE SCHEMA IF NOT EXISTS {schema}; "
    "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('rosetta-migrate'))"
_APPLIED = "SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"
_RECORD = "INSERT INTO {schema}.schema_migrations (version) VALUES (%(version)s)"


def migrate(conn: psycopg.Connection[Any], schema: str, upto: int | None = None) -> int:
    """Apply pending migrations (up to version ``upto``, default all) in one transaction; return the schema
    version now in place. A schema newer than this code is refused: its tables may not mean what we read."""
    ident = sql.Identifier(schema)
    target = len(MIGRATIONS) if upto is None else upto
    with conn.transaction():
        conn.execute(_LOCK)
        conn.execute(sql.SQL(_CREATE_LEDGER).format(schema=ident))
        row = conn.execute(sql.SQL(_APPLIED).format(schema=ident)).fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise SchemaMismatch(
                f"schema {schema!r} is at version {current}, newer than this Rosetta understands (version "
                f"{len(MIGRATIONS)}); upgrade Rosetta (pip install -U rosetta-rag), or use another schema or "
                "database (ROSETTA_SCHEMA, --database-url, --data-dir)"
            )
        for version, statement in enumerate(MIGRATIONS[current:target], start=current + 1):
            conn.execute(sql.SQL(statement).format(schema=ident))
            conn.execute(sql.SQL(_RECORD).format(schema=ident), {"version": version})
    return max(current, target)


def collection_index_names(collection_id: int) -> tuple[str, str]:
    """The names of a collection's dense and sparse HNSW indexes."""
    return f"chunks_dense_c{collection_id}", f"chunks_sparse_c{collection_id}"


def create_collection_indexes(
    conn: psycopg.Connection[Any], schema: str, collection_id: int, dim: int, sparse_dim: int,
    storage: Storage,
) -> None:
    """Create the collection's partial HNSW indexes (dense by ``storage``, sparse inner product)."""
    dense, sparse = collection_index_names(collection_id)
    names = {"dense_index": sql.Identifier(dense), "sparse_index": sql.Identifier(sparse)}
    for statement in COLLECTION_INDEXES:
        conn.execute(
            sql.SQL(statement).format(
                schema=sql.Identifier(schema), dense_key=index_key(storage, dim),
                sparse_dim=sql.Literal(int(sparse_dim)), collection=sql.Literal(int(collection_id)), **names,
            )
        )


def language_index_name(collection_id: int, language: str) -> str:
    """The name of a collection's HNSW index over one language's chunks (the code kept to [a-z0-9_])."""
    return f"chunks_dense_c{collection_id}_" + re.sub(r"[^a-z0-9_]", "_", language.lower())[:40]


def language_indexes(conn: psycopg.Connection[Any], schema: str, collection_id: int) -> set[str]:
    """The names of the collection's per-language indexes that exist."""
    rows = conn.execute(_LANGUAGE_INDEXES, {"schema": schema, "prefix": f"chunks\\_dense\\_c{collection_id}\\_%"})
    return {str(row[0]) for row in rows}


def create_language_index(conn: psycopg.Connection[Any], schema: str, collection_id: int, dim: int,
                          language: str, storage: Storage) -> None:
    """Create the collection's HNSW index over ``language``'s chunks (a partial index; no-op when it exists)."""
    conn.execute(sql.SQL(LANGUAGE_INDEX).format(
        name=sql.Identifier(language_index_name(collection_id, language)), schema=sql.Identifier(schema),
        dense_key=index_key(storage, dim), collection=sql.Literal(int(collection_id)), language=sql.Literal(language)))
