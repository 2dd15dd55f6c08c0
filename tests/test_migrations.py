"""Schema upgrades with data in them, and a schema newer than the code refused.

For every released version v below the latest, a schema is built by migrations 1..v only and filled with
the rows a clean ingest wrote (those of the columns version v has), as a database of that release would
hold them. Opening it runs the remaining migrations; the rows (the columns they add are derived from the
data) and the search results must then equal the clean ingest's, and a re-ingest finds nothing to change.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from rag.config import Config
from rag.errors import SchemaMismatch
from rag.ingest import IngestStatus
from rag.rosetta import Rosetta
from rag.store.schema import MIGRATIONS, create_collection_indexes, migrate
from rag.types import Storage
from tests.fakes import HashEncoder

QUERIES = ("Luftfilter wechseln", "garantía de la batería", "air filter", "快速入门", "リリースノート")
# Every table a release may hold, ordered by a key, so two schemas can be compared row by row.
TABLES = {"collections": "id", "documents": "id", "chunks": "collection_id, id",
          "encoding_cache": "model, text_hash", "sentences": "collection_id, chunk_id, ordinal"}


def _columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()
    return [str(name) for (name,) in rows]


def _rows(conn: psycopg.Connection[Any], schema: str, table: str) -> list[tuple[Any, ...]]:
    columns = [c for c in _columns(conn, schema, table) if c not in ("dense", "sparse", "dense_sum")]
    text = [sql.SQL("{}::text").format(sql.Identifier(c)) for c in _columns(conn, schema, table)
            if c in ("dense", "sparse")]  # vectors compared exactly, as their text form
    query = sql.SQL("SELECT {} FROM {}.{} ORDER BY {}").format(
        sql.SQL(", ").join([*map(sql.Identifier, columns), *text]), sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(TABLES[table]))
    return conn.execute(query).fetchall()


def _stats(conn: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT collection_id, kind, language, rows, dense_sum::text FROM {}.language_stats "
                    "ORDER BY 1, 2, 3").format(sql.Identifier(schema))
    return [(*row[:4], np.array(row[4].strip("[]").split(","), dtype=float)) for row in conn.execute(query)]


def _copy_as_release(conn: psycopg.Connection[Any], source: str, target: str) -> None:
    """Fill ``target`` (at an older version) with ``source``'s rows, in the columns the older tables have."""
    for table in TABLES:
        columns = _columns(conn, target, table)
        if not columns:
            continue  # the table came with a later migration
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        conn.execute(sql.SQL("INSERT INTO {}.{} ({}) SELECT {} FROM {}.{}").format(
            sql.Identifier(target), sql.Identifier(table), names, names, sql.Identifier(source), sql.Identifier(table)))
    for table in ("collections", "documents"):
        conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}.{}))").format(
            sql.Literal(f"{target}.{table}"), sql.Identifier(target), sql.Identifier(table)))
    for collection_id, dim, sparse_dim in conn.execute(sql.SQL("SELECT id, dense_dim, sparse_dim FROM {}.collections")
                                                       .format(sql.Identifier(target))).fetchall():
        create_collection_indexes(conn, target, collection_id, dim, sparse_dim, Storage.VECTOR)  # all releases had


def _search(rosetta: Rosetta) -> list[list[tuple[str, float]]]:
    return [[(h.chunk.id, round(h.score, 9)) for h in rosetta.search(q, collection="manuals", rerank=False)]
            for q in QUERIES]


@pytest.mark.parametrize("release", range(1, len(MIGRATIONS)))
def test_an_upgrade_keeps_every_row_and_search_result(config: Config, demo_copy: Path, release: int) -> None:
    # Sentence vectors came with migration 3, so the clean ingest stores none, as a release before it did.
    # Collections of every release before migration 5 indexed the vectors as they are (storage vector).
    clean = replace(config, ingest=replace(config.ingest, sentence_vectors=False, storage=Storage.VECTOR))
    old = replace(clean, db=replace(clean.db, schema=f"{clean.db.schema}_v{release}"))
    with Rosetta.open(clean, encoder=HashEncoder()) as rosetta:
        rosetta.ingest([demo_copy], collection="manuals")
        expected = _search(rosetta)
        with rosetta.database.pool.connection() as conn:
            assert migrate(conn, old.db.schema, upto=release) == release
            _copy_as_release(conn, clean.db.schema, old.db.schema)
    with Rosetta.open(old, encoder=HashEncoder()) as upgraded:  # runs migrations release+1 .. latest
        with upgraded.database.pool.connection() as conn:
            for table in TABLES:
                assert _rows(conn, old.db.schema, table) == _rows(conn, clean.db.schema, table), table
            before, after = _stats(conn, clean.db.schema), _stats(conn, old.db.schema)
            assert [row[:4] for row in after] == [row[:4] for row in before]
            assert all(np.allclose(a[4], b[4], atol=1e-5) for a, b in zip(after, before, strict=True))
            assert conn.execute(sql.SQL("SELECT max(version) FROM {}.schema_migrations").format(
                sql.Identifier(old.db.schema))).fetchone() == (len(MIGRATIONS),)
            # Migration 7 took the latent sums away, with their triggers and functions.
            assert conn.execute("SELECT to_regclass(%s)", (f"{old.db.schema}.latent_stats",)).fetchone() == (None,)
            assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname LIKE "
                                "'latent%%'", (f"{old.db.schema}.chunks",)).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                                "WHERE n.nspname = %s AND p.proname LIKE 'latent%%'",
                                (old.db.schema,)).fetchone() == (0,)
        assert _search(upgraded) == expected
        again = upgraded.ingest([demo_copy], collection="manuals")
        assert {f.status for f in again.files} == {IngestStatus.UNCHANGED}


def test_a_schema_newer_than_the_code_is_refused(config: Config) -> None:
    with Rosetta.open(config) as rosetta, rosetta.database.pool.connection() as conn:
        conn.execute(sql.SQL("INSERT INTO {}.schema_migrations (version) VALUES (%s)").format(
            sql.Identifier(config.db.schema)), (len(MIGRATIONS) + 1,))
    with pytest.raises(SchemaMismatch) as refused:
        Rosetta.open(config)
    assert str(refused.value) == (
        f"schema {config.db.schema!r} is at version {len(MIGRATIONS) + 1}, newer than this Rosetta understands "
        f"(version {len(MIGRATIONS)}); upgrade Rosetta (pip install -U rosetta-rag), or use another schema or "
        "database (ROSETTA_SCHEMA, --database-url, --data-dir)")
