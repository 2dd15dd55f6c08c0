"""Postgres stopped and restarted under a running Rosetta: clear StoreErrors in time, then the same pool recovers.

Each test starts a private embedded server (the session one must never stop) and stops it with pg_ctl
(fast shutdown: running queries are terminated) while searches run from threads.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from rag.config import Config, DbConfig, IngestConfig
from rag.errors import SchemaMismatch, StoreError
from rag.rosetta import Rosetta
from rag.store.adapt import errors as _errors
from tests.fakes import HashEncoder

TIMEOUT_S = 1.0
# A failing call may spend TIMEOUT_S waiting for a connection; the rest is scheduling slack on a busy box.
SLACK_S = 1.5
QUERY = "How often is the air filter replaced?"
DOCUMENTS = {
    "filter.md": "The air filter is replaced every six months and cleaned every month.",
    "wartung.md": "Der Luftfilter wird alle sechs Monate ersetzt und jeden Monat gereinigt.",
    "noise.md": "The fans produce about thirty-five decibels at full charging power.",
}
RETRY = "check that the database server is running"


@dataclass(frozen=True, slots=True)
class Call:
    """One search made while the server went away and came back."""

    started: float
    seconds: float
    ids: tuple[str, ...] | None
    error: BaseException | None


@pytest.fixture
def rosetta(tmp_path: Path) -> Iterator[Rosetta]:
    """Rosetta on its own embedded Postgres (in ``tmp_path/data/pg``) with a 1 s connection timeout."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCUMENTS.items():
        (corpus / name).write_text(text)
    config = Config(db=DbConfig(url=None, data_dir=tmp_path / "data", timeout_s=TIMEOUT_S, pool_max=4),
                    ingest=IngestConfig(languages=("en", "de")), collection="faults")
    opened = Rosetta.open(config, encoder=HashEncoder(dim=64))
    server = opened.database.server
    try:
        opened.ingest([corpus])
        yield opened
    finally:
        opened.close()
        server.cleanup()


def _ids(rosetta: Rosetta) -> tuple[str, ...]:
    return tuple(hit.chunk.id for hit in rosetta.search(QUERY, k=3))


def _search_until(rosetta: Rosetta, done: threading.Event, calls: list[Call]) -> None:
    while not done.is_set():
        started = time.monotonic()
        try:
            ids: tuple[str, ...] | None = _ids(rosetta)
            error: BaseException | None = None
        except Exception as exc:  # noqa: BLE001 - the test records whatever escapes, to assert on its type
            ids, error = None, exc
        calls.append(Call(started, time.monotonic() - started, ids, error))
        time.sleep(0.01)


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _server_description(rosetta: Rosetta) -> str:
    return f"the embedded Postgres in {rosetta.config.db.data_dir / 'pg'}"


def test_searches_fail_with_a_clear_store_error_in_time_and_the_same_pool_recovers(rosetta: Rosetta) -> None:
    expected = _ids(rosetta)
    pool, server = rosetta.database.pool, rosetta.database.server
    calls: list[Call] = []
    done = threading.Event()
    threads = [threading.Thread(target=_search_until, args=(rosetta, done, calls), daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    server.stop()
    time.sleep(2.5 * TIMEOUT_S)
    server.start()
    restarted = time.monotonic()
    recovered = _wait_for(lambda: any(c.started > restarted and c.ids for c in calls), 10.0)
    time.sleep(0.3)
    done.set()
    for thread in threads:
        thread.join(timeout=TIMEOUT_S + SLACK_S)
    assert not [thread for thread in threads if thread.is_alive()], "a search hung past its timeout"
    assert recovered, "no search succeeded within 10 s of the restart"
    assert rosetta.database.pool is pool

    failures = [c for c in calls if c.error is not None]
    assert failures, "no search ran while the server was down"
    assert {type(c.error) for c in failures} == {StoreError}
    server_name = re.escape(_server_description(rosetta))
    clear = re.compile(rf"[a-z' ]+ failed: (no connection to {server_name} within 1 s|lost the connection to "
                       rf"{server_name} \(.+\)); {RETRY}.*")
    assert [str(c.error) for c in failures if not clear.fullmatch(str(c.error))] == []
    assert max(c.seconds for c in calls) < TIMEOUT_S + SLACK_S
    assert {c.ids for c in calls if c.error is None} == {expected}
    first_after = min(c.started + c.seconds for c in calls if c.started > restarted and c.ids)
    assert first_after - restarted < 3.0, f"the pool took {first_after - restarted:.1f} s to serve again"
    assert _ids(rosetta) == expected


def test_a_query_in_flight_when_postgres_stops_fails_at_once(rosetta: Rosetta) -> None:
    pool, server = rosetta.database.pool, rosetta.database.server
    errors: list[BaseException] = []

    def sleep_in_the_database() -> None:
        try:
            with _errors("search"), pool.connection() as conn:
                conn.execute("SELECT pg_sleep(30)")
        except StoreError as exc:
            errors.append(exc)

    thread = threading.Thread(target=sleep_in_the_database, daemon=True)
    thread.start()
    time.sleep(0.3)
    stopped = time.monotonic()
    server.stop()
    thread.join(timeout=TIMEOUT_S + SLACK_S)
    assert not thread.is_alive() and time.monotonic() - stopped < TIMEOUT_S + SLACK_S
    lost = f"search failed: lost the connection to {_server_description(rosetta)} (terminating connection due to "
    assert [str(e) for e in errors] == [lost + "administrator command)" + LOST]
    server.start()
    assert _ids(rosetta)


def test_opening_against_a_stopped_server_names_it(rosetta: Rosetta) -> None:
    url = rosetta.database.url
    rosetta.database.server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            Rosetta.open(replace(rosetta.config, db=replace(rosetta.config.db, url=url)))
        assert time.monotonic() - started < TIMEOUT_S + SLACK_S
        message = str(caught.value)
        assert message.startswith("cannot connect to postgresql://postgres:***@/postgres?host="), message
        assert "Is the server running locally" in message
    finally:
        rosetta.database.server.start()


def _server_error(cls: type[psycopg.Error], sqlstate: str | None, message: str) -> psycopg.Error:
    """A psycopg error as raised for a server message with ``sqlstate``."""
    error = cls(message)
    if sqlstate is not None:
        error.sqlstate = sqlstate  # set by psycopg from the server's message
    return error


LOST = f"; {RETRY}, then retry (the pool reconnects by itself)"
BUSY = f"; {RETRY} and reachable, then retry (the pool reconnects by itself), or raise db.timeout_s if it is only busy"
FULL = "; free disk space on the database server, then run it again (what was stored before stays intact)"


@pytest.mark.parametrize(("raised", "expected"), [
    (PoolTimeout("no connection to db within 1 s"), "search failed: no connection to db within 1 s" + BUSY),
    (psycopg.OperationalError("lost the connection to db (server closed the connection unexpectedly)"),
     "search failed: lost the connection to db (server closed the connection unexpectedly)" + LOST),
    (psycopg.OperationalError("server closed the connection unexpectedly\n\tThis probably means the server died"),
     "search failed: server closed the connection unexpectedly" + LOST),
    (_server_error(psycopg.errors.AdminShutdown, "57P01", "terminating connection due to administrator command"),
     "search failed: terminating connection due to administrator command" + LOST),
    (_server_error(psycopg.errors.DiskFull, "53100", "could not extend file: No space left on device\nHINT:  x"),
     "search failed: could not extend file: No space left on device" + FULL),
    (_server_error(psycopg.errors.QueryCanceled, "57014", "canceling statement due to statement timeout"),
     "search failed: canceling statement due to statement timeout"),
    (_server_error(psycopg.errors.CheckViolation, "23514", "new row violates check constraint"),
     "search failed: new row violates check constraint"),
])
def test_the_mapping_covers_the_connection_and_pool_errors(raised: psycopg.Error, expected: str) -> None:
    with pytest.raises(StoreError) as caught, _errors("search"):
        raise raised
    assert (type(caught.value), str(caught.value), caught.value.__cause__) == (StoreError, expected, raised)


def test_a_missing_table_is_still_a_schema_mismatch() -> None:
    missing: Any = _server_error(psycopg.errors.UndefinedTable, "42P01", 'relation "x" does not exist')
    with pytest.raises(SchemaMismatch, match=r"run `rosetta ingest` first"), _errors("search"):
        raise missing
