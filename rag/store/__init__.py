"""Postgres storage: ``PgStore`` (pg.py) over the tables of schema.py, searched by the SQL in sql.py, in a
database opened by database.py (the embedded server or a URL). Only this package knows psycopg and pgvector."""

from rag.store.pg import PgStore

__all__ = ["PgStore"]
