"""Two sessions creating a collection's indexes at the same moment: neither fails, each index exists once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from psycopg import sql

from rag.store import PgStore
from rag.store.schema import language_index_name


def _at_once(call: Callable[[], object], sessions: int = 2) -> list[BaseException]:
    """Run ``call`` in ``sessions`` threads released together; return what they raised."""
    raised: list[BaseException] = []
    barrier = threading.Barrier(sessions)

    def run() -> None:
        barrier.wait()
        try:
            call()
        except Exception as exc:  # noqa: BLE001 (any failure is the finding)
            raised.append(exc)

    threads = [threading.Thread(target=run) for _ in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


def _indexes(store: PgStore) -> list[str]:
    with store.pool.connection() as conn:
        rows = conn.execute(r"SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname ~ '_c\d+(_|$)' "
                            "ORDER BY 1", (store.schema,)).fetchall()
    return [str(name) for (name,) in rows]


def test_two_sessions_index_a_new_collection_and_its_languages_at_once(store: PgStore) -> None:
    for name in (f"c{i}" for i in range(8)):
        assert _at_once(lambda name=name: store.ensure_collection(name, "hash", 8, 16)) == []  # type: ignore[misc]
    (collection, *_) = store.collections()
    with store.pool.connection() as conn:
        # Language statistics as ingest leaves them: 'de' and 'ja' with enough chunks for an index each.
        conn.execute(sql.SQL("INSERT INTO {}.language_stats VALUES (%s, 'chunk', 'de', 5, %s), "
                             "(%s, 'chunk', 'ja', 5, %s)").format(sql.Identifier(store.schema)),
                     (collection.id, "[1,0,0,0,0,0,0,0]", collection.id, "[0,1,0,0,0,0,0,0]"))
    assert _at_once(lambda: store.ensure_language_indexes(collection, 5), sessions=3) == []
    ids = sorted(c.id for c in store.collections())
    expected = [name for i in ids for name in (f"chunks_dense_c{i}", f"chunks_sparse_c{i}")]
    expected += [language_index_name(collection.id, code) for code in ("de", "ja")]
    assert _indexes(store) == sorted(expected)
