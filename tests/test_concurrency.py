"""A shared database: two sessions creating a collection's indexes at the same moment (neither fails, each
index exists once), and searches in one process while another process ingests (each search sees whole
documents). Two processes ingesting one directory at once: tests/test_crash.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from psycopg import sql

from rag.config import Config
from rag.rosetta import Rosetta
from rag.store import PgStore
from rag.store.schema import language_index_name
from tests.fakes import HashEncoder


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


WRITER = """
import sys
from pathlib import Path
from rag.config import Config, DbConfig
from rag.rosetta import Rosetta
from tests.fakes import HashEncoder
config = Config(db=DbConfig(url=sys.argv[1], schema=sys.argv[2], data_dir=Path(sys.argv[3])), collection="live")
with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
    assert rosetta.ingest([sys.argv[4]]).failed == 0
"""
# One statement, so one snapshot: every document the reader can see, with its chunk count.
VISIBLE = """
    SELECT d.uri, count(c.id) FROM {}.documents d LEFT JOIN {}.chunks c ON c.document_id = d.id GROUP BY d.uri
"""
LINES = ["Der Luftfilter wird alle sechs Monate gereinigt.", "The fans stop when the charger is idle.",
         "La garantía cubre una pérdida de capacidad.", "ファームウェアの更新中は電源を切らないでください。"]


def _visible(rosetta: Rosetta) -> dict[str, int]:
    schema = sql.Identifier(rosetta.config.db.schema)
    with rosetta.database.pool.connection() as conn:
        return {str(uri): int(n) for uri, n in conn.execute(sql.SQL(VISIBLE).format(schema, schema))}


def test_searches_see_whole_documents_while_another_process_ingests(config: Config, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(80):
        paragraphs = [f"Nr. {i}.{p}: {LINES[(i + p) % 4]}" for p in range(1 + i % 4)]
        (corpus / f"doc{i:02d}.txt").write_text("\n\n".join(paragraphs) + "\n")
    seen: list[dict[str, int]] = []
    hits: set[tuple[str, str]] = set()
    with Rosetta.open(config, encoder=HashEncoder()) as rosetta:
        encoder = rosetta.encoder("live")
        rosetta.store.ensure_collection("live", encoder.name, encoder.dim, encoder.sparse_dim)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(config.db.url), config.db.schema,
                                   str(tmp_path / "data"), str(corpus)], env=env, stderr=subprocess.PIPE)
        while writer.poll() is None:
            seen.append(_visible(rosetta))
            hits |= {(h.chunk.id, h.chunk.text) for h in rosetta.search("Luftfilter garantía", collection="live")}
        assert writer.wait() == 0, writer.stderr.read().decode() if writer.stderr else ""
        final = _visible(rosetta)
        with rosetta.database.pool.connection() as conn:
            stored = set(conn.execute(sql.SQL("SELECT id, text FROM {}.chunks").format(
                sql.Identifier(config.db.schema))).fetchall())
    assert len(final) == 80
    # The reader ran while the writer wrote: it saw some documents but not all, and never a partial one.
    assert any(0 < len(snapshot) < 80 for snapshot in seen), [len(snapshot) for snapshot in seen]
    assert [{uri: n for uri, n in snapshot.items() if n != final[uri]} for snapshot in seen] == [{}] * len(seen)
    assert hits and hits <= stored
